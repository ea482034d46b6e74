//! The `capstan` binary: wiring only. Parses settings, starts logging, runs a subcommand.

mod broker_install;
mod settings;

use std::sync::Arc;

use capstan::platform::Platform;
use clap::Parser;
use settings::{Cli, Command, LogFormat};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            // One readable line with every cause, never a backtrace: these are user-facing.
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    match cli.command {
        Command::Dev(args) => run_server(args.into_settings()?, true).await,
        Command::Serve(args) => run_server(args.into_settings()?, false).await,
        Command::Invoices(settings::InvoicesCommand::Close(args)) => close_invoices(args).await,
        Command::Invoices(settings::InvoicesCommand::Void(args)) => void_invoice(args).await,
        Command::Invoices(settings::InvoicesCommand::Verify(args)) => verify_invoices(args).await,
        Command::Operator(settings::OperatorArgs {
            action: Some(settings::OperatorAction::Render { file }),
            ..
        }) => {
            let yaml = if file.as_os_str() == "-" {
                std::io::read_to_string(std::io::stdin())?
            } else {
                std::fs::read_to_string(&file)
                    .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", file.display()))?
            };
            print!("{}", capstan_operator::dry_run(&yaml)?);
            Ok(())
        }
        Command::Operator(args) => {
            let identity = args
                .identity
                .or_else(|| {
                    std::env::var("HOSTNAME")
                        .ok()
                        .filter(|name| !name.is_empty())
                })
                .unwrap_or_else(|| format!("capstan-operator-{}", std::process::id()));
            capstan_operator::run(
                args.listen,
                args.lease,
                identity,
                args.namespaces,
                shutdown_signal(),
            )
            .await?;
            Ok(())
        }
        Command::Crd => {
            print!("{}", capstan_operator::crd_yaml()?);
            Ok(())
        }
        Command::Migrate(args) => {
            let store = capstan_api::store::Store::connect(&args.database_url)
                .await
                .map_err(report)?;
            store.migrate().await.map_err(report)?;
            println!(
                "migrations applied to {}",
                capstan_api::store::redact(&args.database_url)
            );
            Ok(())
        }
    }
}

async fn run_server(settings: settings::Resolved, dev: bool) -> anyhow::Result<()> {
    let settings::Resolved {
        mut app,
        metering,
        explicit_broker,
        kubernetes,
    } = settings;
    let provisioner: Option<Arc<dyn capstan_api::provisioner::Provisioner>> = match kubernetes {
        Some(kubernetes) => {
            let clusters =
                capstan_operator::provisioner::KubernetesClusters::connect(kubernetes.template()?)
                    .await?;
            Some(Arc::new(capstan::kubernetes::KubernetesProvisioner::new(
                clusters,
                kubernetes.pools(),
                kubernetes.kubernetes_dedicated_access,
            )))
        }
        None => {
            app.broker_binary =
                match capstan_api::provisioner::find_broker_binary(explicit_broker.as_deref()) {
                    Ok(path) => path,
                    Err(_) if dev && explicit_broker.is_none() => broker_install::install().await?,
                    Err(e) => return Err(report(e)),
                };
            None
        }
    };
    let data_dir = app.data_dir.clone();
    let database = capstan_api::store::redact(&app.database_url);
    let interval = metering.interval;
    let platform = Platform::build_with(app, metering, provisioner)
        .await
        .map_err(report)?;
    let application = platform.application();
    let address = application.local_addr().map_err(report)?;
    let gateway = application.gateway_addr().map_err(report)?;
    let kafka = application.kafka_addr();
    let kafka_shown = application.state().config.kafka_endpoint.clone();
    let (resumed, failed) = application.resumed_clusters();
    let rest = application.state().config.rest_endpoint.clone();
    println!("Capstan {} is running", if dev { "dev" } else { "serve" });
    println!("  console and provisioning API  http://{address}");
    println!("  OpenAPI document              http://{address}/openapi.json");
    println!("  health and metrics            http://{address}/healthz  http://{address}/metrics");
    println!("  REST data gateway             http://{gateway}  (shown to users as {rest})");
    println!("  Kafka gateway (SASL/SCRAM)    {kafka}  (shown to users as {kafka_shown})");
    println!("  database                      {database}");
    println!("  data directory                {}", data_dir.display());
    println!(
        "  metering                      a sweep every {}s",
        interval.as_secs()
    );
    let failed_note = if failed > 0 {
        format!(" ({failed} failed; see the log)")
    } else {
        String::new()
    };
    println!("  clusters brought back         {resumed}{failed_note}");
    println!("Press Ctrl-C to stop.");
    platform
        .run_until(shutdown_signal())
        .await
        .map_err(report)?;
    println!("stopped cleanly");
    Ok(())
}

/// The month an `invoices` command is about (default: the previous one), and the store, migrated.
async fn invoices_target(
    args: &settings::CloseArgs,
    now: i64,
) -> anyhow::Result<(capstan_billing::ledger::Month, capstan_api::store::Store)> {
    use capstan_billing::ledger::Month;
    let month = match &args.month {
        Some(text) => Month::parse(text)?,
        None => Month::of(now).previous(),
    };
    let store = capstan_api::store::Store::connect(&args.database_url)
        .await
        .map_err(report)?;
    store.migrate().await.map_err(report)?;
    Ok((month, store))
}

async fn close_invoices(args: settings::CloseNowArgs) -> anyhow::Result<()> {
    use capstan_billing::{invoices, metering::unix_now};
    let prices = args.target.pricing.prices()?;
    let now = unix_now();
    let (month, store) = invoices_target(&args.target, now).await?;
    let customers = capstan::platform::ControlPlaneCustomers::new(store.clone());
    let readiness = invoices::readiness(store.pool(), &customers, month, now).await?;
    if !readiness.behind.is_empty() {
        if !(args.force || readiness.overdue) {
            anyhow::bail!(
                "{} cluster(s) have not been metered through the end of {} yet: {}. A running \
                 control plane meters them within a sweep of midnight UTC and then closes the \
                 month itself; wait for it, or pass --force to close now (their late usage then \
                 counts in the next month)",
                readiness.behind.len(),
                month.label(),
                readiness.behind.join(", ")
            );
        }
        eprintln!(
            "closing without {} cluster(s) metered through the end of the month: {} (their late usage counts in the next month)",
            readiness.behind.len(),
            readiness.behind.join(", ")
        );
    }
    eprintln!("closing {} …", month.label());
    let report = invoices::close_month(store.pool(), &prices, &customers, month, now).await?;
    println!(
        "{}: {} invoices created, {} already existed, {} finalized",
        month.label(),
        report.created,
        report.existing,
        report.finalized
    );
    Ok(())
}

async fn verify_invoices(args: settings::CloseArgs) -> anyhow::Result<()> {
    use capstan_billing::{audit, metering::unix_now};
    let prices = args.pricing.prices()?;
    let (month, store) = invoices_target(&args, unix_now()).await?;
    let customers = capstan::platform::ControlPlaneCustomers::new(store.clone());
    eprintln!(
        "recomputing the invoices of {} from their usage …",
        month.label()
    );
    let report = audit::verify_month(store.pool(), &prices, &customers, month).await?;
    for discrepancy in &report.discrepancies {
        println!("{discrepancy}");
    }
    println!(
        "{}: {} invoices checked, {} differences",
        month.label(),
        report.invoices_checked,
        report.discrepancies.len()
    );
    if !report.discrepancies.is_empty() {
        anyhow::bail!(
            "the invoices of {} do not match their usage (see above); if the prices were changed since the close, give the ones it used",
            month.label()
        );
    }
    Ok(())
}

async fn void_invoice(args: settings::VoidArgs) -> anyhow::Result<()> {
    let store = capstan_api::store::Store::connect(&args.database_url)
        .await
        .map_err(report)?;
    store.migrate().await.map_err(report)?;
    capstan_billing::invoices::void(store.pool(), &args.invoice_id).await?;
    println!("invoice {} is void", args.invoice_id);
    Ok(())
}

/// Turns a library error into one line with its whole cause chain.
fn report(error: capstan_api::Error) -> anyhow::Error {
    anyhow::anyhow!(capstan_api::cause_chain(&error))
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutdown requested");
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("CAPSTAN_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn,tower_http=info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
