//! `parley` serves (default); `parley openapi` prints the OpenAPI document; `parley conformance`
//! serves only the Socket.IO protocol test stack (see `parley::conformance`).

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
        Some("openapi") => {
            print!("{}", parley::http::openapi_json());
            ExitCode::SUCCESS
        }
        Some(other) => {
            eprintln!("unknown command `{other}`; usage: parley [serve | openapi | conformance]");
            ExitCode::from(2)
        }
    }
}

async fn serve() -> anyhow::Result<()> {
    let config = Config::from_env()?;
    telemetry::init_logging(config.log_format);
    tracing::info!(config = config.summary(), "starting parley");
    let app = Application::build(config).await?;
    tracing::info!(addr = %app.local_addr(), "listening");
    app.run(shutdown_signal()).await
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %err, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(err) => {
                tracing::error!(error = %err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => tracing::info!("SIGINT received"),
        _ = terminate => tracing::info!("SIGTERM received"),
    }
}
