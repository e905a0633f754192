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
        // Tests and scripts read this line to find the port when listening on :0.
        {
            use std::io::Write;
            // A closed stdout must not stop the server; the log line below says the same.
            let mut out = std::io::stdout();
            let _ = writeln!(out, "listening on http://{local}").and_then(|()| out.flush());
        }
        tracing::info!(%local, "api listening");
        let state = ApiState::new(
            cfg.db.clone(),
            crate::store_options(cfg, true),
            cfg.normalizer.clone(),
        );
        let shutdown = CancellationToken::new();
        tokio::spawn(wait_for_signal(shutdown.clone()));
        onetruth_api::serve(listener, state, shutdown.cancelled_owned())
            .await
            .context("api server failed")?;
        tracing::info!("api stopped");
        Ok(())
    })
}

async fn wait_for_signal(token: CancellationToken) {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot listen for SIGTERM");
                    let _ = ctrl_c.await;
                    token.cancel();
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    tracing::info!("shutting down");
    token.cancel();
}
