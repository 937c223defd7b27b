//! `parley` serves (default); `parley openapi` prints the OpenAPI document; `parley conformance`
//! serves only the Socket.IO protocol test stack (see `parley::conformance`); `parley
//! hash-password` prints the Argon2 hash of the password on standard input (for
//! `ADMIN_PASSWORD_HASH`).

use std::process::ExitCode;

use parley::{app::Application, config::Config, telemetry};

#[tokio::main]
async fn main() -> ExitCode {
    let command = std::env::args().nth(1);
    match command.as_deref() {
        None | Some("serve") => match serve().await {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                tracing::error!(error = format!("{err:#}"), "parley failed");
                eprintln!("error: {err:#}");
                ExitCode::FAILURE
            }
        },
        Some("conformance") => match parley::conformance::run(shutdown_signal()).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("error: {err:#}");
                ExitCode::FAILURE
            }
        },
        Some("hash-password") => match hash_password() {
            Ok(hash) => {
                println!("{hash}");
                ExitCode::SUCCESS
            }
            Err(err) => {
                eprintln!("error: {err:#}");
                ExitCode::FAILURE
            }
        },
        Some("openapi") => {
            print!("{}", parley::http::openapi_json());
            ExitCode::SUCCESS
        }
        Some(other) => {
            eprintln!("unknown command `{other}`; usage: parley [serve | openapi | conformance | hash-password]");
            ExitCode::from(2)
        }
    }
}

/// An Argon2id hash (PHC string) of the password on standard input's first line, for
/// `ADMIN_PASSWORD_HASH`.
fn hash_password() -> anyhow::Result<String> {
    use argon2::PasswordHasher as _;
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    let password = line.trim_end_matches(['\r', '\n']);
    anyhow::ensure!(!password.is_empty(), "give the password on standard input");
    let hash = argon2::Argon2::default().hash_password(password.as_bytes()).map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(hash.to_string())
}

async fn serve() -> anyhow::Result<()> {
    let shutdown = shutdown_signal();
    let config = Config::from_env()?;
    telemetry::init_logging(config.log_format);
    tracing::info!(config = config.summary(), "starting parley");
    let app = Application::build(config).await?;
    tracing::info!(addr = %app.local_addr(), "listening");
    app.run(shutdown).await
}

/// Listens for SIGINT (Ctrl-C) and SIGTERM from the call on (so a signal sent as soon as
/// "listening" is logged is not missed); the future resolves on either.
#[cfg(unix)]
fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send + 'static {
    use tokio::signal::unix::{SignalKind, signal};
    let streams = signal(SignalKind::interrupt()).and_then(|i| Ok((i, signal(SignalKind::terminate())?)));
    async move {
        let (mut interrupt, mut terminate) = match streams {
            Ok(streams) => streams,
            Err(err) => {
                tracing::error!(error = %err, "cannot listen for SIGINT / SIGTERM");
                std::future::pending().await
            }
        };
        tokio::select! {
            _ = interrupt.recv() => tracing::info!("SIGINT received"),
            _ = terminate.recv() => tracing::info!("SIGTERM received"),
        }
    }
}

#[cfg(not(unix))]
fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send + 'static {
    async {
        if tokio::signal::ctrl_c().await.is_ok() {
            tracing::info!("Ctrl-C received");
        } else {
            std::future::pending::<()>().await;
        }
    }
}
