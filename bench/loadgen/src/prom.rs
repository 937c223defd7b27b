//! Reading gauges from the servers' `GET /metrics` (Prometheus text exposition format).

use std::time::Duration;

use anyhow::Context;

/// A client that keeps no connection open between scrapes: a pooled keep-alive connection
/// would be one more task alive in the server, and the soak counts those.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(10))
        .build()
        .expect("an HTTP client")
}

/// The `/metrics` text of each server, in the order of `urls`.
pub async fn scrape(http: &reqwest::Client, urls: &[String]) -> anyhow::Result<Vec<String>> {
    let mut texts = Vec::with_capacity(urls.len());
    for url in urls {
        let url = format!("{}/metrics", url.trim_end_matches('/'));
        let reply = http.get(&url).send().await.with_context(|| format!("GET {url}"))?;
        texts.push(reply.error_for_status()?.text().await?);
    }
    Ok(texts)
}

/// The value of metric `name` in `text`, summed over its label sets; `None` if the server
/// does not export it (yet: a gauge appears once it is first set).
pub fn value(text: &str, name: &str) -> Option<f64> {
    let mut found = None;
    for line in text.lines() {
        let Some(rest) = line.strip_prefix(name) else { continue };
        let rest = match rest.chars().next() {
            Some(' ') => rest,
            Some('{') => &rest[rest.find('}')? + 1..],
            _ => continue,
        };
        let Some(number) = rest.split_whitespace().next().and_then(|v| v.parse::<f64>().ok()) else { continue };
        *found.get_or_insert(0.0) += number + 0.0; // -0 reads as 0
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gauge_is_read_with_or_without_labels_and_not_confused_with_a_longer_name() {
        let text = "# TYPE parley_sockets_connected gauge\nparley_sockets_connected 12\n\
                    parley_sockets_connected_total 99\nparley_x{a=\"1\"} 2\nparley_x{a=\"2\"} 3.5\n";
        assert_eq!(value(text, "parley_sockets_connected"), Some(12.0));
        assert_eq!(value(text, "parley_x"), Some(5.5));
        assert_eq!(value(text, "parley_typing_entries"), None);
    }
}
