//! `streamedge`: the sidecar daemon and command line of a streamedge home server.

mod address;
mod api;
mod certs;
mod client;
mod config;
mod config_file;
mod ddns;
mod fetch;
mod fsutil;
mod init;
mod keys;
mod library;
mod nginx;
mod proc;
mod render;
mod run;
mod sign;
mod status;

#[cfg(test)]
mod props;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "streamedge",
    version,
    about = "A streaming edge for a home server, beside nginx"
)]
struct Cli {
    /// Configuration file (or its folder) [default: $STREAMEDGE_CONFIG, else /etc/streamedge/streamedge.toml].
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Write a complete configuration (streamedge.toml, nginx.conf, data folders) into a folder.
    Init(init::InitArgs),
    /// Run the sidecar, starting and supervising nginx when the configuration says so.
    Run,
    /// Manage stream keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Print a link that opens a private stream or library item for a while.
    Sign {
        /// What to open: /live/NAME or /vod/ID (or a file below them).
        #[arg(required_unless_present = "rotate_secret")]
        path: Option<String>,
        /// How long the link works ("30m", "1h", "7d").
        #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
        ttl: std::time::Duration,
        /// Only this client address may use the link.
        #[arg(long)]
        ip: Option<std::net::IpAddr>,
        #[arg(long)]
        json: bool,
        /// Make a new signing secret; links signed with the current one keep working until
        /// the next rotation.
        #[arg(long, conflicts_with_all = ["path", "ip"])]
        rotate_secret: bool,
    },
    /// Put a video or an audio track from the web into the library (yt-dlp, then ffmpeg).
    Fetch {
        url: String,
        /// Keep only the sound (AAC HLS and an MP3 for download).
        #[arg(long)]
        audio: bool,
        /// A height limit and segment format: "720p", "ts", "480p,ts" (fMP4 by default).
        #[arg(long)]
        preset: Option<String>,
        #[arg(long)]
        title: Option<String>,
        /// POST the job's final JSON to this URL when it ends.
        #[arg(long)]
        webhook: Option<String>,
        /// Follow the job until it ends; the exit code says how (0 done, 1 failed, 2 cancelled).
        #[arg(long)]
        wait: bool,
        #[arg(long)]
        json: bool,
    },
    /// Fetch jobs: list them, or cancel one.
    Jobs {
        #[command(subcommand)]
        command: Option<JobsCommand>,
        #[arg(long)]
        json: bool,
    },
    /// Library items.
    #[command(subcommand)]
    Library(LibraryCommand),
    /// The HTTPS certificate (ACME).
    #[command(subcommand)]
    Cert(CertCommand),
    /// Dynamic DNS (IONOS).
    #[command(subcommand)]
    Ddns(DdnsCommand),
    /// Show whether nginx runs, who is live and how many keys exist.
    Status {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
enum JobsCommand {
    /// Stop a job: its tools are stopped and its files removed.
    Cancel {
        id: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
enum DdnsCommand {
    /// Create the IONOS DynDNS bulk for the names and store its update URL (mode "dyndns").
    Setup,
    /// Delete the DynDNS bulk.
    Disable,
    /// Check the public address and update DNS when it changed; every interval, until stopped.
    Check {
        /// One check, then exit (non-zero if it failed).
        #[arg(long)]
        once: bool,
        /// Say what would be sent, send nothing.
        #[arg(long)]
        dry_run: bool,
        /// Stop after this many checks.
        #[arg(long)]
        count: Option<u64>,
    },
    /// Current address, what DNS says, the last update and the next check.
    Status {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
enum CertCommand {
    /// Names, expiry, next renewal and the last error.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Renew now if due (or with --force, regardless); exits 0 only with a valid certificate
    /// in service.
    Renew {
        #[arg(long)]
        force: bool,
    },
}

#[derive(Debug, Subcommand)]
enum LibraryCommand {
    /// Add a local video or audio file: transcoded into adaptive HLS with a poster.
    Import {
        file: PathBuf,
        #[arg(long)]
        title: Option<String>,
        /// Keep only the sound (AAC HLS and an MP3 for download).
        #[arg(long)]
        audio: bool,
        #[arg(long)]
        json: bool,
    },
    /// List the items.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Delete an item.
    Remove {
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Let an item play only through signed links.
    Private { id: String },
    /// Let anyone play an item.
    Public { id: String },
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Create a key for a new stream name; the secret is shown once.
    Add {
        name: String,
        /// The stream plays only through signed links (`streamedge sign`).
        #[arg(long)]
        private: bool,
        #[arg(long)]
        json: bool,
    },
    /// Let a name's stream play only through signed links.
    Private { name: String },
    /// Let anyone watch a name's stream.
    Public { name: String },
    /// List stream names and the state of their keys (never a secret).
    List {
        #[arg(long)]
        json: bool,
    },
    /// Stop a name from publishing.
    Revoke { name: String },
    /// Give a name a new secret; the old one stops working.
    Rotate {
        name: String,
        #[arg(long)]
        json: bool,
    },
}

fn print_json<T: serde::Serialize>(value: &T) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

async fn dispatch(cli: Cli) -> Result<ExitCode> {
    let load = || config::Config::load(&config::path(cli.config.clone()));
    match cli.command {
        Command::Init(args) => {
            init::init(&args)?;
            let path = args.dir.join("streamedge.toml");
            println!(
                "wrote {}\nstart it with: streamedge run --config {}",
                path.display(),
                path.display()
            );
        }
        Command::Run => return run::run(&load()?).await.map(|()| ExitCode::SUCCESS),
        Command::Keys(k) => {
            let c = load()?;
            match k {
                KeysCommand::Add {
                    name,
                    private,
                    json,
                } => {
                    let k = keys::add(&c, &name, private)?;
                    if json {
                        print_json(&k)?
                    } else {
                        print!("{}", keys::describe(&c, &k))
                    }
                }
                KeysCommand::Rotate { name, json } => {
                    let k = keys::rotate(&c, &name)?;
                    if json {
                        print_json(&k)?
                    } else {
                        print!("{}", keys::describe(&c, &k))
                    }
                }
                KeysCommand::Private { name } => {
                    keys::set_private(&c, &name, true)?;
                    println!("\"{name}\" plays only through signed links now (`streamedge sign /live/{name}`)");
                }
                KeysCommand::Public { name } => {
                    keys::set_private(&c, &name, false)?;
                    println!("anyone may watch \"{name}\" now");
                }
                KeysCommand::Revoke { name } => {
                    keys::revoke(&c, &name)?;
                    println!("revoked the key of \"{name}\": it can no longer publish");
                }
                KeysCommand::List { json } => {
                    let list = keys::list(&c)?;
                    if json {
                        print_json(&list)?;
                    } else if list.is_empty() {
                        println!("no stream keys yet: `streamedge keys add NAME` makes one");
                    } else {
                        println!("{:<24} {:<8} {:<8} CREATED", "NAME", "STATE", "ACCESS");
                        for k in list {
                            let access = if k.private { "private" } else { "public" };
                            println!("{:<24} {:<8} {:<8} {}", k.name, k.state, access, k.created);
                        }
                    }
                }
            }
        }
        Command::Sign {
            path,
            ttl,
            ip,
            json,
            rotate_secret,
        } => {
            let c = load()?;
            if rotate_secret {
                let reloaded = sign::rotate(&c)?;
                println!("new signing secret in use; links signed before keep working until the next rotation");
                if !reloaded {
                    println!("nginx is not running: it reads the new secret when it starts");
                }
            } else {
                let s = sign::sign(&c, path.as_deref().unwrap_or_default(), ttl, ip)?;
                if json {
                    print_json(&s)?
                } else {
                    println!("{}\nin the web player: {}", s.url, s.player);
                    if let Some(rtmp) = &s.rtmp {
                        println!("over RTMP: {rtmp}");
                    }
                    println!("(valid until {})", s.expires)
                }
            }
        }
        Command::Library(l) => {
            let c = load()?;
            match l {
                LibraryCommand::Import {
                    file,
                    title,
                    audio,
                    json,
                } => {
                    let m = library::import(&c, &file, title.as_deref(), audio).await?;
                    if json {
                        print_json(&m)?;
                    } else {
                        println!(
                            "added \"{}\" as {} ({} {}, {:.0}s): {}/vod/{}/master.m3u8",
                            m.title,
                            m.id,
                            m.kind,
                            m.renditions.join(" "),
                            m.duration,
                            c.http_url(),
                            m.id
                        );
                    }
                }
                LibraryCommand::List { json } => {
                    let items = library::list(&c)?;
                    if json {
                        print_json(&items)?;
                    } else if items.is_empty() {
                        println!(
                            "the library is empty: `streamedge library import FILE` adds to it"
                        );
                    } else {
                        for i in items {
                            let access = if i.private { "private" } else { "public" };
                            println!(
                                "{:<20} {:<6} {:>7.0}s {:<8} {}",
                                i.id, i.kind, i.duration, access, i.title
                            );
                        }
                    }
                }
                LibraryCommand::Remove { id, json } => {
                    library::remove(&c, &id)?;
                    if json {
                        print_json(&serde_json::json!({ "removed": id }))?;
                    } else {
                        println!("removed library item \"{id}\"");
                    }
                }
                LibraryCommand::Private { id } => {
                    library::set_private(&c, &id, true)?;
                    println!("library item \"{id}\" plays only through signed links now (`streamedge sign /vod/{id}`)");
                }
                LibraryCommand::Public { id } => {
                    library::set_private(&c, &id, false)?;
                    println!("anyone may play library item \"{id}\" now");
                }
            }
        }
        Command::Fetch {
            url,
            audio,
            preset,
            title,
            webhook,
            wait,
            json,
        } => {
            let c = load()?;
            let api = client::Client::new(&c)?;
            let request = serde_json::json!({
                "url": url,
                "kind": if audio { "audio" } else { "video" },
                "preset": preset,
                "title": title,
                "webhook": webhook,
            });
            let job = api.submit(&request).await?;
            if !wait {
                if json {
                    print_json(&job)?;
                } else {
                    println!(
                        "job {} queued: `streamedge jobs` shows its progress",
                        job.id
                    );
                }
                return Ok(ExitCode::SUCCESS);
            }
            if !json {
                println!("job {}: {}", job.id, job.url);
            }
            let end = client::wait(&api, &c, &job.id, !json).await?;
            if json {
                print_json(&end)?;
            }
            return Ok(client::exit_code(&end));
        }
        Command::Jobs { command, json } => {
            let c = load()?;
            let api = client::Client::new(&c)?;
            match command {
                None => {
                    let jobs = api.jobs().await?;
                    if json {
                        print_json(&jobs)?;
                    } else if jobs.is_empty() {
                        println!("no jobs: `streamedge fetch URL` starts one");
                    } else {
                        jobs.iter()
                            .for_each(|j| println!("{}", client::describe(j)));
                    }
                }
                Some(JobsCommand::Cancel { id, json }) => {
                    let j = api.cancel(&id).await?;
                    if json {
                        print_json(&j)?;
                    } else {
                        println!("job {id} {}", j.state.as_str());
                    }
                }
            }
        }
        Command::Cert(CertCommand::Status { json }) => {
            let c = load()?;
            let Some(st) = certs::status(&c)? else {
                anyhow::bail!("ACME is off: set acme.domains in streamedge.toml (or streamedge init --domain NAME)");
            };
            if json {
                print_json(&st)?;
            } else {
                println!("domains: {}", st.domains.join(", "));
                match (&st.not_after, &st.next_renewal) {
                    (Some(na), Some(nr)) => println!(
                        "certificate: serial {}, valid until {na}, renewal from {nr}",
                        st.serial.as_deref().unwrap_or("?")
                    ),
                    _ => println!("certificate: none yet (HTTPS serves a self-signed placeholder)"),
                }
                if let Some(e) = &st.last_error {
                    println!("last error: {e} ({} failure(s) in a row)", st.failures);
                }
                if let Some(n) = &st.next_attempt {
                    println!("next attempt: {n}");
                }
            }
        }
        Command::Cert(CertCommand::Renew { force }) => {
            let c = load()?;
            match certs::renew(&c, force).await? {
                certs::Outcome::Renewed(info) => println!(
                    "new certificate for {} (serial {}), valid until {}",
                    info.names.join(", "),
                    info.serial,
                    humantime::format_rfc3339_seconds(info.not_after)
                ),
                certs::Outcome::NotDue { not_after, renew_at } => println!(
                    "the certificate is valid until {}; renewal is due from {} (--force renews now)",
                    humantime::format_rfc3339_seconds(not_after),
                    humantime::format_rfc3339_seconds(renew_at)
                ),
            }
        }
        Command::Ddns(cmd) => {
            let c = load()?;
            match cmd {
                DdnsCommand::Setup => println!(
                    "DynDNS bulk {} created; its update URL is stored",
                    ddns::setup(&c).await?
                ),
                DdnsCommand::Disable => {
                    ddns::disable(&c).await?;
                    println!("DynDNS bulk deleted");
                }
                DdnsCommand::Check {
                    once,
                    dry_run,
                    count,
                } => {
                    let rounds = if once { Some(1) } else { count };
                    let interval = c.ddns.as_ref().map(|d| d.interval()).unwrap_or_default();
                    let mut done = 0u64;
                    let failed = loop {
                        let r = ddns::check(&c, dry_run).await?;
                        r.lines.iter().for_each(|l| println!("{l}"));
                        done += 1;
                        if rounds.is_some_and(|n| done >= n) {
                            break r.failed;
                        }
                        tokio::time::sleep(interval).await;
                    };
                    if failed {
                        return Ok(ExitCode::FAILURE);
                    }
                }
                DdnsCommand::Status { json } => {
                    let st = ddns::status(&c)?;
                    if json {
                        print_json(&st)?;
                    } else {
                        println!("mode: {}, names: {}", st.mode, st.domains.join(", "));
                        for (t, f) in [("A", &st.ipv4), ("AAAA", &st.ipv6)] {
                            if let Some(f) = f {
                                let addr = f
                                    .address
                                    .map(|a| a.to_string())
                                    .unwrap_or_else(|| "unknown".into());
                                println!(
                                    "{t}: address {addr}, DNS says {:?}, last sent {}",
                                    f.dns,
                                    f.last_sent
                                        .map(|a| a.to_string())
                                        .unwrap_or_else(|| "nothing".into())
                                );
                            }
                        }
                        println!(
                            "last check: {}, next: {}",
                            st.last_check.as_deref().unwrap_or("never"),
                            st.next_check.as_deref().unwrap_or("-")
                        );
                        if let Some(r) = &st.last_result {
                            println!("last result: {r}");
                        }
                        if let Some(e) = &st.error {
                            println!("error: {e}");
                        }
                    }
                }
            }
        }
        Command::Status { json } => {
            let s = status::gather(&load()?).await?;
            if json {
                print_json(&s)?
            } else {
                print!("{}", status::describe(&s))
            }
            if !s.nginx.running {
                return Ok(ExitCode::from(3));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("STREAMEDGE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("streamedge: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(dispatch(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("streamedge: {e:#}");
            ExitCode::FAILURE
        }
    }
}
