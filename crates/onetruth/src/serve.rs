//! `onetruth serve`: the HTTP API with graceful shutdown on Ctrl-C / SIGTERM.

use std::net::SocketAddr;

use anyhow::Context;
use onetruth_api::ApiState;
use tokio_util::sync::CancellationToken;

use crate::config::Config;

pub fn serve(cfg: &Config, listen: Option<&str>) -> anyhow::Result<()> {
    let addr: SocketAddr = match listen {
        Some(l) => l
            .parse()
            .with_context(|| format!("--listen `{l}` is not an address like 127.0.0.1:7700"))?,
        None => cfg.listen,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr}"))?;
        let local = listener.local_addr()?;
        announce(local);
        tracing::info!(%local, "api listening");
        let state = ApiState::new(
            cfg.db.clone(),
            crate::store_options(cfg, true),
            cfg.normalizer.clone(),
        );
        let shutdown = CancellationToken::new();
        let mut signals = Signals::new()?;
        let token = shutdown.clone();
        tokio::spawn(async move {
            signals.next().await;
            tracing::info!("shutting down");
            token.cancel();
        });
        onetruth_api::serve(listener, state, shutdown.cancelled_owned())
            .await
            .context("api server failed")?;
        tracing::info!("api stopped");
        Ok(())
    })
}

/// Print the address being served on stdout: tests and scripts read this line to find the port
/// when listening on :0.
pub fn announce(local: SocketAddr) {
    use std::io::Write;
    // A closed stdout must not stop the server; the log line says the same.
    let mut out = std::io::stdout();
    let _ = writeln!(out, "listening on http://{local}").and_then(|()| out.flush());
}

/// SIGTERM and SIGINT (Ctrl-C), as a stream of "a signal came".
pub struct Signals {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
}

impl Signals {
    pub fn new() -> anyhow::Result<Signals> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(Signals {
                term: signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?,
                int: signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?,
            })
        }
        #[cfg(not(unix))]
        Ok(Signals {})
    }

    /// Wait for the next signal.
    pub async fn next(&mut self) {
        #[cfg(unix)]
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
    }
}
