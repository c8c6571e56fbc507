//! `noxy-devrelay`: run a development Noxy relay with simulated devices on this machine.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use noxy_devrelay::config::parse_identity_spec;
use noxy_devrelay::{
    AppConfig, DevRelay, DevRelayConfig, DevicePolicy, FaultConfig, FileConfig, Limits, Storage,
};

/// A development relay for Noxy decisions: serves noxy.agent.AgentService over TLS on loopback,
/// with simulated devices (real ML-KEM-768 keys) and an HTTP/JSON device API.
///
/// On start it creates a CA and a server certificate for localhost, 127.0.0.1 and ::1 in the
/// state directory (or reuses them), then prints the gRPC endpoint, the CA path and the HTTP URL.
/// Point any gRPC client at the endpoint, trusting the CA, with
/// `authorization: Bearer <token>`.
#[derive(Debug, Parser)]
#[command(name = "noxy-devrelay", version, about, long_about)]
struct Cli {
    /// Address of the gRPC (TLS) server; port 0 picks a free port.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:50051")]
    listen: SocketAddr,

    /// Address of the HTTP/JSON device API (plain HTTP); port 0 picks a free port.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:50052")]
    http_listen: SocketAddr,

    /// Directory for ca.pem, ca.key, server.pem and server.key (reused when present) and
    /// relay.db, the SQLite database holding the relay's state across restarts.
    #[arg(long, value_name = "PATH", default_value = ".noxy-devrelay")]
    state_dir: PathBuf,

    /// Keep the relay's state (apps, devices, decisions, answers) in memory only, not in
    /// <state-dir>/relay.db: a restart then starts empty.
    #[arg(long)]
    in_memory: bool,

    /// An app: <token>:<name>[:<quota>[:suspended]] (repeatable; quota defaults to 1000).
    /// Without any --app or --config app: one app `dev-token:dev-app:1000`.
    #[arg(long = "app", value_name = "SPEC")]
    apps: Vec<String>,

    /// An identity with simulated devices: <app name>:<identity_id>:<policy>[,<policy>...]
    /// (repeatable). Policies: approve, reject, ignore, approve-after=<ms>, reject-after=<ms>,
    /// offline (offline, then approve), offline:<policy> or browser (a person answers on the
    /// device page, the `page` URL printed at start). Without any identity and with the
    /// default app: identity `demo-user` with one `approve` device.
    #[arg(long = "identity", value_name = "SPEC")]
    identities: Vec<String>,

    /// A JSON configuration file with apps, identities and faults (merged with the flags).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,

    /// Once both servers listen, write {"endpoint","ca_path","http_url","http_token"} as JSON
    /// to this file (atomically: a temporary file, then a rename; mode 0600, as it holds the
    /// HTTP access token). A file left there by an earlier run is removed at start.
    #[arg(long, value_name = "PATH")]
    ready_file: Option<PathBuf>,

    /// Allow --listen and --http-listen to be addresses other than loopback (e.g. 0.0.0.0).
    /// Without it the relay refuses them: other machines could then reach it.
    #[arg(long)]
    allow_non_loopback: bool,

    /// Seconds a decision is kept after it became terminal (answered or expired), with its
    /// deliveries, ciphertexts and request-id answers; afterwards it is unknown (NOT_FOUND).
    #[arg(long, value_name = "SECONDS", default_value_t = 600)]
    eviction_grace: u64,

    /// Deliveries one device may hold until they are evicted; RouteDecision beyond it is
    /// refused with RESOURCE_EXHAUSTED.
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    max_inbox: usize,

    /// Ciphertext the relay may hold in all, in MiB; RouteDecision beyond it is refused with
    /// RESOURCE_EXHAUSTED.
    #[arg(long, value_name = "MIB", default_value_t = 512)]
    max_stored_mib: u64,

    /// Devices one identity may have; a registration beyond it is refused (409).
    #[arg(long, value_name = "N", default_value_t = 32)]
    max_devices_per_identity: usize,

    /// Devices one app may get registered over HTTP; a registration beyond it is refused (409).
    #[arg(long, value_name = "N", default_value_t = 1000)]
    max_registered_devices: usize,

    /// Seed of the deterministic fault generator.
    #[arg(long, value_name = "N", default_value_t = 0)]
    fault_seed: u64,

    /// Fraction (0..1) of calls failed with UNAVAILABLE before the relay acts on them.
    #[arg(long, value_name = "FRACTION", default_value_t = 0.0)]
    fault_unavailable_before: f64,

    /// Fraction (0..1) of calls failed with UNAVAILABLE after the relay has acted on them.
    #[arg(long, value_name = "FRACTION", default_value_t = 0.0)]
    fault_unavailable_after: f64,

    /// Latency added to every call subject to faults, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 0)]
    fault_latency_ms: u64,

    /// Fraction (0..1) of calls that never answer (until the client gives up).
    #[arg(long, value_name = "FRACTION", default_value_t = 0.0)]
    fault_stall: f64,

    /// Fraction (0..1) of calls whose connection is dropped (no GOAWAY) before the relay acts.
    #[arg(long, value_name = "FRACTION", default_value_t = 0.0)]
    fault_close_before: f64,

    /// Fraction (0..1) of calls whose connection is dropped after the relay has acted on them.
    #[arg(long, value_name = "FRACTION", default_value_t = 0.0)]
    fault_close_after: f64,

    /// Fraction (0..1) of calls refused with GOAWAY (and REFUSED_STREAM) before the relay acts.
    #[arg(long, value_name = "FRACTION", default_value_t = 0.0)]
    fault_goaway_before: f64,

    /// Fraction (0..1) of calls the relay acts on, then sends GOAWAY and closes the connection
    /// without answering them.
    #[arg(long, value_name = "FRACTION", default_value_t = 0.0)]
    fault_goaway_after: f64,

    /// Comma-separated RPC names the faults apply to (e.g. RouteDecision,GetDecisionOutcome);
    /// all RPCs when absent.
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    fault_methods: Option<Vec<String>>,

    /// Log level on stderr: error, warn, info, debug or trace (tokens and payloads are never
    /// logged).
    #[arg(long, value_name = "LEVEL", default_value = "info")]
    log_level: tracing::Level,
}

fn build_config(cli: &Cli) -> Result<DevRelayConfig, String> {
    let mut apps: Vec<AppConfig> = Vec::new();
    let mut faults = None;
    if let Some(path) = &cli.config {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("reading {}: {e}", path.display()))?;
        let file = FileConfig::from_json(&text)?;
        apps.extend(file.app_configs()?);
        faults = file.faults;
    }
    for spec in &cli.apps {
        apps.push(spec.parse().map_err(|e| format!("--app {spec:?}: {e}"))?);
    }
    let defaulted = apps.is_empty();
    if defaulted {
        apps.push(AppConfig::new("dev-token", "dev-app", 1000));
    }
    for spec in &cli.identities {
        let (app_name, identity) =
            parse_identity_spec(spec).map_err(|e| format!("--identity {spec:?}: {e}"))?;
        let app = apps
            .iter_mut()
            .find(|a| a.name == app_name)
            .ok_or_else(|| format!("--identity {spec:?}: no app named {app_name:?}"))?;
        app.identities.push(identity);
    }
    if defaulted && cli.identities.is_empty() && apps[0].identities.is_empty() {
        apps[0] = apps[0]
            .clone()
            .with_identity("demo-user", vec![DevicePolicy::Approve]);
    }
    let flag_faults = FaultConfig {
        seed: cli.fault_seed,
        unavailable_before_fraction: cli.fault_unavailable_before,
        unavailable_after_fraction: cli.fault_unavailable_after,
        latency: Duration::from_millis(cli.fault_latency_ms),
        stall_fraction: cli.fault_stall,
        close_before_fraction: cli.fault_close_before,
        close_after_fraction: cli.fault_close_after,
        goaway_before_fraction: cli.fault_goaway_before,
        goaway_after_fraction: cli.fault_goaway_after,
        methods: cli.fault_methods.clone(),
    };
    let faults = if flag_faults.is_off() {
        faults
            .map(|f| FaultConfig {
                seed: if cli.fault_seed != 0 {
                    cli.fault_seed
                } else {
                    f.seed
                },
                methods: cli.fault_methods.clone().or(f.methods.clone()),
                ..f
            })
            .unwrap_or(flag_faults)
    } else {
        flag_faults
    };
    Ok(DevRelayConfig {
        grpc_addr: cli.listen,
        http_addr: cli.http_listen,
        state_dir: Some(cli.state_dir.clone()),
        storage: if cli.in_memory {
            Storage::InMemory
        } else {
            Storage::in_state_dir(&cli.state_dir)
        },
        apps,
        faults,
        allow_non_loopback: cli.allow_non_loopback,
        limits: Limits {
            eviction_grace: Duration::from_secs(cli.eviction_grace),
            max_inbox_entries: cli.max_inbox,
            max_stored_bytes: cli.max_stored_mib.saturating_mul(1 << 20),
            max_devices_per_identity: cli.max_devices_per_identity,
            max_registered_devices_per_app: cli.max_registered_devices,
        },
    })
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

async fn run(cli: Cli) -> Result<(), String> {
    let config = build_config(&cli)?;
    let summary: Vec<(String, String, Vec<DevicePolicy>)> = config
        .apps
        .iter()
        .flat_map(|a| {
            a.identities
                .iter()
                .map(|i| (a.name.clone(), i.identity_id.clone(), i.devices.clone()))
        })
        .collect();
    let app_names: Vec<String> = config.apps.iter().map(|a| a.name.clone()).collect();
    let exposed = [config.grpc_addr, config.http_addr]
        .iter()
        .any(|a| !a.ip().is_loopback());
    if let Some(path) = &cli.ready_file {
        // A script waiting for the file must not read the one of an earlier run.
        match std::fs::remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(format!(
                    "removing the old ready file {}: {e}",
                    path.display()
                ))
            }
        }
    }
    let relay = DevRelay::start(config).await.map_err(|e| e.to_string())?;
    let ca_path = std::fs::canonicalize(relay.ca_path())
        .unwrap_or_else(|_| relay.ca_path().to_path_buf())
        .display()
        .to_string();
    if exposed {
        eprintln!();
        eprintln!(
            "WARNING: noxy-devrelay listens on a non-loopback address (--allow-non-loopback):"
        );
        eprintln!(
            "WARNING: other machines can reach it. It is a development relay: its app tokens"
        );
        eprintln!("WARNING: are in its configuration, and its HTTP API answers decisions for");
        eprintln!("WARNING: whoever has the access token (the device page is served there too).");
        eprintln!("WARNING: Use it on a network you trust only.");
        eprintln!();
    }
    println!("noxy-devrelay is running");
    println!("  endpoint: {}", relay.endpoint());
    println!("  ca:       {ca_path}");
    println!("  http:     {}", relay.http_url());
    println!("  page:     {} (the device page)", relay.page_url());
    println!(
        "  token:    {} (HTTP API: Authorization: Bearer <token>)",
        relay.http_token()
    );
    match relay.storage() {
        Storage::File(path) => println!(
            "  state:    {} ({} decisions held)",
            path.display(),
            relay.decision_count()
        ),
        Storage::InMemory => println!("  state:    in memory (--in-memory)"),
    }
    for name in &app_names {
        if let Some((total, remaining, status)) = relay.quota(name) {
            if remaining == total {
                println!("  app:      {name} (quota {total}, {status})");
            } else {
                println!("  app:      {name} (quota {remaining} of {total} left, {status})");
            }
        }
    }
    for (app, identity, policies) in &summary {
        for (id, policy) in relay.device_ids(app, identity).iter().zip(policies) {
            println!("  device:   {app}/{identity} {id} ({policy})");
        }
    }
    if let Some(path) = &cli.ready_file {
        relay.write_ready_file(path).map_err(|e| e.to_string())?;
    }
    wait_for_signal().await;
    println!("noxy-devrelay: stopping");
    relay.shutdown().await;
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_max_level(cli.log_level)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("noxy-devrelay: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("noxy-devrelay: {e}");
            ExitCode::from(2)
        }
    }
}
