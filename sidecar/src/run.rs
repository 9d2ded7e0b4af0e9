//! `streamedge run`: the daemon. Renders nginx's configuration, starts and supervises nginx
//! (when configured), reloads on SIGHUP and stops everything on SIGTERM or Ctrl-C.

use std::time::Duration;

use anyhow::{Context, Result};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;

use crate::config::Config;
use crate::nginx::render;
use crate::nginx::{self, Order};

pub async fn run(config: &Config) -> Result<()> {
    raise_file_limit();
    let user = crate::workers::worker_user(config)?;
    crate::setup::prepare(config, user.as_ref())?;
    nginx::origin::prepare(config).await?;
    render::write_nginx_conf(config, user.as_ref())?;

    let (tx, rx) = mpsc::channel(4);
    let mut hup = signal(SignalKind::hangup()).context("cannot watch SIGHUP")?;
    let mut term = signal(SignalKind::terminate()).context("cannot watch SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot watch SIGINT")?;

    // The background work, whoever runs nginx.
    // What a previous run that died left in the live folders (a master playlist naming
    // rungs no process writes, a relay's title) goes before anything reads it.
    crate::live::clean_up(config);
    let mut tasks = vec![announce_when_ready(config.clone())];
    let listener = crate::api::bind(config).await?;
    let jobs = crate::fetch::Manager::open(config)?;
    jobs.resume();
    let board = crate::live::Board::default();
    let restreams = crate::restream::session::Board::default();
    let relays = crate::restream::relay::Board::default();
    let chat = crate::chat::Chat::open(&config.layout())?;
    let feeds = crate::live::feed::Feeds::default();
    let stations = crate::live::listen::Stations::default();
    {
        let config = config.clone();
        let parts = crate::api::Parts {
            jobs: jobs.clone(),
            live: board.clone(),
            restreams: restreams.clone(),
            relays: relays.clone(),
            chat: chat.clone(),
            feeds: feeds.clone(),
            stations: stations.clone(),
        };
        tasks.push(tokio::spawn(async move {
            if let Err(e) = crate::api::serve(listener, config, parts).await {
                tracing::error!("{e:#}");
            }
        }));
    }
    // The live pipeline, beside nginx-rtmp: thumbnails, and ladders unless
    // live.transcode = "off".
    let live = tokio_util::sync::CancellationToken::new();
    // nginx pushes every stream here; what reads a feed (the ladder) finds it here.
    let listener = tokio::net::TcpListener::bind(config.live.feed)
        .await
        .with_context(|| format!("cannot listen on {} (live.feed)", config.live.feed))?;
    tasks.push(tokio::spawn(crate::live::feed::serve(
        listener,
        feeds.clone(),
        live.clone(),
    )));
    // Who is live, as the live pipeline last heard it from nginx: the chat rooms tell
    // their viewers the audience from it.
    let registry = tokio::sync::watch::Sender::new(std::sync::Arc::new(Vec::new()));
    let chat_task = tokio::spawn(chat.run(registry.subscribe(), live.clone()));
    tasks.push(tokio::spawn(crate::live::run_loop(
        config.clone(),
        board,
        feeds.clone(),
        registry,
        live.clone(),
    )));
    // The listeners of /listen/NAME, counted with the players.
    tasks.push(tokio::spawn(stations.report(config.clone(), live.clone())));
    // Audio from DJ software, as Icecast sources.
    if let Some(listener) = crate::live::icecast::bind(config).await {
        tasks.push(tokio::spawn(crate::live::icecast::serve(
            config.clone(),
            listener,
            live.clone(),
        )));
    }
    // Each live stream on to its destinations.
    tasks.push(tokio::spawn(crate::restream::session::run_loop(
        config.clone(),
        feeds,
        restreams,
        live.clone(),
    )));
    // Live sources pulled in as local streams.
    tasks.push(tokio::spawn(crate::restream::relay::run_loop(
        config.clone(),
        relays,
        live.clone(),
    )));
    // The library from a phone.
    if config.telegram.is_some() {
        tasks.push(tokio::spawn(crate::telegram::run(
            config.clone(),
            jobs.clone(),
            live.clone(),
        )));
    }
    // The library's bucket: uploads what is published, finishes removals and moves.
    if let (None, Some(bucket)) = (&config.edge, crate::library::bucket::Bucket::of(config)?) {
        tasks.push(tokio::spawn(crate::library::bucket::keep(
            config.clone(),
            bucket,
        )));
    }
    if config.ddns.as_ref().is_some_and(|d| d.updates()) {
        tasks.push(tokio::spawn(crate::ddns::run_loop(config.clone())));
    }
    if crate::certs::settings(config).is_some() {
        // Certificates need nginx to answer the CA's challenges: the loop starts once it does.
        let config = config.clone();
        tasks.push(tokio::spawn(async move {
            nginx::wait_answering(&config, None).await;
            crate::certs::run_loop(config, nginx::reload_running).await
        }));
    }
    // An edge follows the home's address (nginx resolves the origin only when it starts).
    if config.edge.is_some() {
        let (config, tx) = (config.clone(), tx.clone());
        tasks.push(tokio::spawn(async move {
            let supervised = config.nginx.supervise;
            let again = config.clone();
            nginx::origin::watch(config, move || {
                if supervised {
                    tx.try_send(Order::Reload)
                        .context("the nginx supervisor is busy")
                } else {
                    render::write_nginx_conf(
                        &again,
                        crate::workers::worker_user(&again)?.as_ref(),
                    )?;
                    nginx::reload_running(&again).map(|_| ())
                }
            })
            .await
        }));
    }
    let stop_tasks = |tasks: &[tokio::task::JoinHandle<()>]| tasks.iter().for_each(|t| t.abort());

    if !config.nginx.supervise {
        tracing::info!("streamedge running; nginx is not supervised (nginx.supervise = false)");
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        stop_tasks(&tasks);
        live.cancel();
        crate::live::clean_up(config);
        let _ = tokio::time::timeout(Duration::from_secs(2), chat_task).await;
        return Ok(());
    }
    let mut supervisor = {
        let config = config.clone();
        tokio::spawn(async move { nginx::supervise(&config, rx).await })
    };
    loop {
        tokio::select! {
            done = &mut supervisor => {
                stop_tasks(&tasks);
                live.cancel();
                crate::live::clean_up(config);
                let _ = tokio::time::timeout(Duration::from_secs(2), chat_task).await;
                return done.context("nginx supervisor failed")?;
            }
            _ = hup.recv() => { let _ = tx.send(Order::Reload).await; }
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
    }
    stop_tasks(&tasks);
    live.cancel();
    crate::live::clean_up(config);
    let _ = tokio::time::timeout(Duration::from_secs(2), chat_task).await;
    tracing::info!("stopping");
    let _ = tx.send(Order::Stop).await;
    supervisor.await.context("nginx supervisor failed")?
}

/// Prints where to publish and watch once nginx answers.
fn announce_when_ready(config: Config) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        if nginx::wait_answering(&config, Some(Duration::from_secs(10))).await {
            tracing::info!(
                "ready: web player {}/ (from this machine also {}/); OBS server {} with a stream key; \
                 fetching from the web page needs the API token in {}",
                config.watch_url(),
                config.local_http(),
                config.rtmp_url(),
                config.layout().api_token_file().display()
            );
            return;
        }
        tracing::warn!("nginx does not answer on {} yet", config.internal_http());
    })
}

/// Every chat viewer and `/listen/` listener is a connection to the sidecar: as many as
/// the system allows this process (the hard limit), not a shell's default of 1,024.
fn raise_file_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        if soft < hard {
            if let Err(e) = setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
                tracing::warn!("cannot raise the open files limit from {soft} to {hard}: {e}");
            }
        }
    }
}
