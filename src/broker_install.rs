//! Installs the local broker (tansu) into Capstan's cache the first time `capstan dev` needs it.

use std::path::PathBuf;

use anyhow::{Context, bail};
use capstan_api::provisioner::{cached_broker_binary, find_broker_binary};

/// Builds tansu with cargo (about 15 minutes on 2 cores, once), showing cargo's progress.
pub async fn install() -> anyhow::Result<PathBuf> {
    let binary = cached_broker_binary()
        .context("HOME is not set; pass --broker-bin PATH to a tansu executable")?;
    let root = binary
        .parent()
        .and_then(|bin| bin.parent())
        .context("unexpected broker cache path")?
        .to_owned();
    let version = capstan_api::provisioner::TANSU_VERSION;
    eprintln!("The local broker (tansu {version}) is not installed yet.");
    eprintln!(
        "Building it once into {} (about 15 minutes on 2 cores)…",
        root.display()
    );
    let status = tokio::process::Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .args(["install", "--root"])
        .arg(&root)
        .args(["tansu", "--version", version, "--locked", "--no-default-features", "--features", "libsql"])
        .status()
        .await
        .context("could not run cargo to build the local broker; install Rust (rustup.rs) or pass --broker-bin")?;
    if !status.success() {
        bail!(
            "building the local broker failed ({status}); see cargo's output above, or pass --broker-bin PATH"
        );
    }
    find_broker_binary(Some(&binary)).map_err(|e| anyhow::anyhow!(e.to_string()))
}
