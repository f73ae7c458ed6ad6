//! The `portcullis` binary: parse the CLI, load the config, set up logging,
//! build the app and run it until SIGTERM or Ctrl-C.

use std::io::BufRead as _;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use portcullis::config::{Config, LogFormat};
use portcullis::{App, Listeners};

#[derive(Parser)]
#[command(name = "portcullis", version, about = "Authentication reverse proxy")]
struct Cli {
    /// Path to proxy.toml.
    #[arg(
        long,
        global = true,
        env = "PORTCULLIS_CONFIG",
        default_value = "proxy.toml"
    )]
    config: PathBuf,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the proxy (the default).
    Serve,
    /// Validate the config and every backend it names; exit 1 on any problem.
    Check,
    /// Read a password from stdin and print a hash for the users file or table.
    HashPassword {
        #[arg(long, default_value = "bcrypt", value_parser = ["bcrypt", "argon2id"])]
        algorithm: String,
    },
    /// Apply the PostgreSQL schema.
    Migrate,
    /// List or revoke live sessions (revoking also ends the bearer token
    /// families, so their access and refresh tokens are refused).
    Sessions {
        #[command(subcommand)]
        action: SessionsAction,
    },
    /// Second factors: `mfa reset --user U` removes U's (a lost phone); U
    /// then signs in with the password alone and may enrol again.
    Mfa {
        #[command(subcommand)]
        action: MfaAction,
    },
    /// Mint an SSO hand-off token with a configured partner's key.
    SsoToken {
        #[arg(long)]
        partner: String,
        /// The value of the partner's `user_claim` (e.g. an email).
        #[arg(long)]
        user: String,
        /// The partner's private key (PEM), for partners that sign with a
        /// public-key algorithm; HS* partners use their configured secret.
        #[arg(long)]
        private_key: Option<PathBuf>,
    },
    /// List every operation of the app's OpenAPI document with the decision
    /// the route rules give it and the rule that decided; exit 2 when the
    /// document cannot be read.
    Routes {
        /// An http:// URL (FastAPI serves /openapi.json), a file, or `-`.
        #[arg(long, value_name = "URL|FILE")]
        openapi: String,
        /// Exit 1 when any operation falls to the default rule (for CI).
        #[arg(long)]
        strict: bool,
    },
    /// Print a shell completion script, e.g.
    /// `portcullis completions bash > /etc/bash_completion.d/portcullis`.
    Completions {
        #[arg(value_enum)]
        shell: CompletionShell,
    },
}

/// The shells `completions` writes a script for.
#[derive(Clone, Copy, clap::ValueEnum)]
enum CompletionShell {
    Bash,
    Zsh,
    Fish,
}

#[derive(Subcommand)]
enum MfaAction {
    /// Remove a user's second factor and recovery codes.
    Reset {
        /// The username (or email) as the credential backend knows it.
        #[arg(long)]
        user: String,
    },
}

#[derive(Subcommand)]
enum SessionsAction {
    List {
        #[arg(long)]
        user: String,
    },
    Revoke {
        #[arg(long, required_unless_present = "all")]
        user: Option<String>,
        #[arg(long)]
        all: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(&cli.config),
        Command::Check => check(&cli.config),
        Command::HashPassword { algorithm } => hash_password(&algorithm),
        Command::Migrate => with_runtime(&cli.config, migrate),
        Command::Sessions { action } => {
            with_runtime(&cli.config, |config| sessions(config, action))
        }
        Command::Mfa { action } => with_runtime(&cli.config, |config| mfa(config, action)),
        Command::SsoToken {
            partner,
            user,
            private_key,
        } => sso_token(&cli.config, &partner, &user, private_key.as_deref()),
        Command::Routes { openapi, strict } => routes(&cli.config, &openapi, strict),
        Command::Completions { shell } => completions(shell),
    }
}

fn load(path: &std::path::Path) -> Option<Config> {
    match Config::load(path) {
        Ok(config) => Some(config),
        Err(e) => {
            eprintln!("{e:#}");
            None
        }
    }
}

fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match format {
        LogFormat::Json => builder.json().flatten_event(true).init(),
        LogFormat::Pretty => builder.init(),
    }
}

fn serve(path: &std::path::Path) -> ExitCode {
    let Some(config) = load(path) else {
        return ExitCode::FAILURE;
    };
    init_tracing(config.log.format);
    // This thread runs what goes on beside the requests (start-up, reloads,
    // the admin listener, revocation listeners, sweeps, queues); the proxy
    // listener's workers run on threads of their own (`server::run`).
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        // Caught from the start: an early SIGHUP must not kill the process.
        let hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
        // Start-up work (schema, shared keys) finishes before the port opens.
        let app = App::build(config)?;
        app.wait_started().await;
        let listeners = Listeners::bind(&app.config).await?;
        tokio::spawn(reload_on_sighup(app.clone(), path.to_path_buf(), hup));
        tracing::info!(
            listen = %listeners.main.local_addr()?,
            upstream = %app.config.upstream.authority,
            "portcullis is serving"
        );
        portcullis::run(app, listeners, shutdown_signal()).await;
        anyhow::Ok(())
    });
    match result {
        Ok(()) => {
            tracing::info!("stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "cannot start");
            eprintln!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Resolves on SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    tracing::info!("shutdown requested");
}

/// On SIGHUP, re-reads the config and applies what can change live (routes,
/// SSO partners, the users file, TLS certificates); a config that does not
/// validate is refused and the running one kept.
async fn reload_on_sighup(
    app: std::sync::Arc<App>,
    path: PathBuf,
    mut hup: tokio::signal::unix::Signal,
) {
    while hup.recv().await.is_some() {
        tracing::info!(config = %path.display(), "SIGHUP: reloading");
        let outcome = Config::load(&path)
            .map_err(|e| format!("{e:#}"))
            .and_then(|config| app.reload(&config));
        if let Err(e) = outcome {
            tracing::error!(error = %e, "reload refused; the running configuration is unchanged");
        }
    }
}

/// Loads the config and runs an async command on a fresh runtime.
fn with_runtime<F, Fut>(path: &std::path::Path, command: F) -> ExitCode
where
    F: FnOnce(Config) -> Fut,
    Fut: std::future::Future<Output = ExitCode>,
{
    let Some(config) = load(path) else {
        return ExitCode::FAILURE;
    };
    match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime.block_on(command(config)),
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            ExitCode::FAILURE
        }
    }
}

fn check(path: &std::path::Path) -> ExitCode {
    with_runtime(path, |config| async move {
        for warning in portcullis::ops::warnings(&config) {
            eprintln!("warning: {warning}");
        }
        let problems = portcullis::ops::check(&config).await;
        if problems.is_empty() {
            println!(
                "{}: ok (config valid, every backend answered)",
                path.display()
            );
            ExitCode::SUCCESS
        } else {
            for problem in problems {
                eprintln!("{problem}");
            }
            ExitCode::FAILURE
        }
    })
}

async fn migrate(config: Config) -> ExitCode {
    match portcullis::ops::migrate(&config).await {
        Ok(ran) => {
            println!("schema up to date ({ran} migration(s) applied)");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn sessions(config: Config, action: SessionsAction) -> ExitCode {
    let result =
        match action {
            SessionsAction::List { user } => portcullis::ops::sessions_list(&config, &user)
                .await
                .map(|lines| {
                    if lines.is_empty() {
                        println!("no live sessions for {user}");
                    }
                    for line in lines {
                        println!("{line}");
                    }
                }),
            SessionsAction::Revoke { user, all } => {
                let user = if all { None } else { user };
                portcullis::ops::sessions_revoke(&config, user.as_deref())
                    .await
                    .map(|n| {
                        println!(
                            "revoked {} session(s) and {} token family(ies)",
                            n.sessions, n.families
                        )
                    })
            }
        };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn mfa(config: Config, action: MfaAction) -> ExitCode {
    let MfaAction::Reset { user } = action;
    match portcullis::ops::mfa_reset(&config, &user).await {
        Ok(true) => {
            println!("second factor of {user} removed; they sign in with their password and may enrol again");
            ExitCode::SUCCESS
        }
        Ok(false) => {
            println!("{user} had no second factor on (any pending enrolment was removed)");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

fn sso_token(
    path: &std::path::Path,
    name: &str,
    user: &str,
    private_key: Option<&std::path::Path>,
) -> ExitCode {
    let Some(config) = load(path) else {
        return ExitCode::FAILURE;
    };
    let Some(partner) = config.sso.iter().find(|p| p.name == name) else {
        let names: Vec<&str> = config.sso.iter().map(|p| p.name.as_str()).collect();
        eprintln!("sso.partners: no partner named {name:?} (configured: {names:?})");
        return ExitCode::FAILURE;
    };
    let pem = match private_key.map(std::fs::read).transpose() {
        Ok(pem) => pem,
        Err(e) => {
            eprintln!("--private-key: {e}");
            return ExitCode::FAILURE;
        }
    };
    match portcullis::auth::sso::mint(partner, user, pem.as_deref()) {
        Ok(token) => {
            println!("{token}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

fn hash_password(algorithm: &str) -> ExitCode {
    let mut line = String::new();
    if let Err(e) = std::io::stdin().lock().read_line(&mut line) {
        eprintln!("cannot read the password from stdin: {e}");
        return ExitCode::FAILURE;
    }
    let password = line
        .strip_suffix('\n')
        .map_or(line.as_str(), |l| l.strip_suffix('\r').unwrap_or(l));
    if password.is_empty() {
        eprintln!("empty password: type it on stdin, e.g. `portcullis hash-password < file`");
        return ExitCode::FAILURE;
    }
    match portcullis::auth::password::hash_password(password, algorithm) {
        Ok(hash) => {
            println!("{hash}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

/// `routes`: exit 0, 1 (`--strict` and an operation without a rule), or 2
/// (the config or the document cannot be read).
fn routes(path: &std::path::Path, location: &str, strict: bool) -> ExitCode {
    let Some(config) = load(path) else {
        return ExitCode::from(2);
    };
    match tokio::runtime::Runtime::new() {
        Ok(rt) => {
            ExitCode::from(rt.block_on(portcullis::ops::routes::run(&config, location, strict)))
        }
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            ExitCode::from(2)
        }
    }
}

fn completions(shell: CompletionShell) -> ExitCode {
    use clap::CommandFactory as _;
    let shell = match shell {
        CompletionShell::Bash => clap_complete::Shell::Bash,
        CompletionShell::Zsh => clap_complete::Shell::Zsh,
        CompletionShell::Fish => clap_complete::Shell::Fish,
    };
    // Into a buffer first: clap_complete panics on a write error (`| head`).
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "portcullis", &mut script);
    match std::io::Write::write_all(&mut std::io::stdout(), &script) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cannot write the completion script: {e}");
            ExitCode::FAILURE
        }
    }
}
