//! The control API on loopback, which nginx proxies at `/api/`: fetch jobs and the library.
//! Writes (and job details, which name what the owner fetched) need the bearer token in
//! `DATA/api.token`; the public library list does not. Errors are JSON with a message and
//! the status that fits.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use axum::body::{Body, Bytes};
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::Serialize;
use serde_json::json;
use streamedge_formats::layout::VOD_PLAYLIST;
use subtle::ConstantTimeEq;

use crate::config::Config;
use crate::error::Error;
use crate::fetch::{Manager, NewJob};
use crate::fsutil::write_atomic;

/// Request bodies larger than this are refused (413): a job request is a URL and a few words.
pub const MAX_BODY: usize = 16 * 1024;

/// Signed links in the library list work this long.
const LINK_TTL: Duration = Duration::from_secs(6 * 3600);

/// What the API shows and works on, from the daemon's other parts.
pub struct Parts {
    pub jobs: Manager,
    pub live: crate::live::Board,
    pub restreams: crate::restream::session::Board,
    pub relays: crate::restream::relay::Board,
    pub chat: crate::chat::Chat,
    pub feeds: crate::live::feed::Feeds,
    pub stations: crate::live::listen::Stations,
}

struct Api {
    config: Config,
    jobs: Manager,
    live: crate::live::Board,
    restreams: crate::restream::session::Board,
    relays: crate::restream::relay::Board,
    chat: crate::chat::Chat,
    feeds: crate::live::feed::Feeds,
    stations: crate::live::listen::Stations,
    token: String,
}

type Shared = Arc<Api>;

/// Makes the API token if there is none (0600, like every secret).
pub fn ensure_token(config: &Config) -> Result<()> {
    let path = config.layout().api_token_file();
    if path.exists() {
        return Ok(());
    }
    let token = crate::keys::new_secret()?;
    write_atomic(&path, format!("{token}\n").as_bytes(), 0o600, None)
}

pub fn read_token(config: &Config) -> Result<String> {
    let path = config.layout().api_token_file();
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read the API token {}", path.display()))?;
    Ok(text.trim().to_string())
}

/// Opens the API's port: done before anything starts, so a taken port stops `run` at once.
pub async fn bind(config: &Config) -> Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(&config.api.listen)
        .await
        .with_context(|| format!("cannot listen on {} (api.listen)", config.api.listen))
}

pub async fn serve(listener: tokio::net::TcpListener, config: Config, parts: Parts) -> Result<()> {
    let token = read_token(&config)?;
    tracing::info!("control API on {}", config.api.listen);
    let Parts {
        jobs,
        live,
        restreams,
        relays,
        chat,
        feeds,
        stations,
    } = parts;
    let api = Arc::new(Api {
        config,
        jobs,
        live,
        restreams,
        relays,
        chat,
        feeds,
        stations,
        token,
    });
    axum::serve(listener, router(api))
        .await
        .context("the control API stopped")
}

fn router(api: Shared) -> Router {
    // Everything but the library list is the owner's: one check in front of those routes.
    let owner = Router::new()
        .route("/api/jobs", get(list_jobs).post(create_job))
        .route("/api/jobs/{id}", get(get_job).delete(cancel_job))
        .route("/api/library/{id}", delete(remove_item).patch(edit_item))
        .route("/api/library/{id}/thumbnails", post(take_thumbnails))
        .route("/api/library/{id}/poster", post(set_poster))
        .route("/api/live", get(list_live))
        .route("/api/restreams", get(list_restreams).post(add_restream))
        .route(
            "/api/restreams/{id}",
            delete(remove_restream).patch(edit_restream),
        )
        .route("/api/relays", get(list_relays).post(add_relay))
        .route("/api/relays/{stream}", delete(remove_relay))
        .route("/api/streams/{name}/chat/messages", get(chat_messages))
        .route(
            "/api/streams/{name}/chat/messages/{id}",
            delete(delete_chat_message),
        )
        .route("/api/chat/bans", get(chat_bans).post(add_chat_ban))
        .route("/api/schedule/{id}", delete(remove_broadcast))
        .route("/api/chat/bans/{kind}/{value}", delete(lift_chat_ban))
        .route("/api/broadcasts", get(list_broadcasts))
        .route("/api/processes", get(list_processes))
        .route("/api/metrics", get(metrics))
        .route_layer(middleware::from_fn_with_state(api.clone(), require_token));
    Router::new()
        .route("/api/library", get(list_library))
        .route("/api/streams/{name}/chat", get(chat_history))
        // Listed for everyone; adding checks the token itself.
        .route("/api/schedule", get(list_schedule).post(add_broadcast))
        .route("/api/streams/{name}/chat/ws", get(chat_socket))
        // Proxied by nginx at /listen/: a live stream's sound for radio apps.
        .route("/listen/{name}", get(listen))
        // Only on this port, which listens on loopback and which nginx does not proxy
        // (it forwards /api/ alone): for a Prometheus on this machine.
        .route("/metrics", get(metrics))
        .merge(owner)
        .fallback(|| async { Error::NotFound("no such API endpoint".into()).into_response() })
        .method_not_allowed_fallback(|| async {
            Error::MethodNotAllowed("method not allowed here".into()).into_response()
        })
        .with_state(api)
}

/// Every error answer: `{"error": MESSAGE}` with the status `Error::status` gives it.
impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let message = format!("{self:#}");
        let mut r = (status, Json(json!({ "error": message }))).into_response();
        if let Error::Unauthorized(_) = self {
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        r
    }
}

/// Whether the request carries the token (compared in constant time).
fn authorized(api: &Api, headers: &HeaderMap) -> bool {
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default()
        .trim();
    !api.token.is_empty() && bool::from(given.as_bytes().ct_eq(api.token.as_bytes()))
}

/// Lets a request through only with the token.
async fn require_token(State(api): State<Shared>, req: Request, next: Next) -> Response {
    if authorized(&api, req.headers()) {
        next.run(req).await
    } else {
        Error::Unauthorized(
            "this needs the API token (Authorization: Bearer TOKEN; `streamedge status` says where it is)".into(),
        )
        .into_response()
    }
}

fn ok<T: Serialize>(status: StatusCode, value: &T) -> Response {
    let mut r = (status, Json(value)).into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// The live pipeline of every live stream, private ones too: the owner's.
async fn list_live(State(api): State<Shared>) -> Response {
    ok(StatusCode::OK, &api.live.snapshot())
}

/// Every restream destination (keys masked) with what its push does now: the owner's.
async fn list_restreams(State(api): State<Shared>) -> Response {
    match crate::restream::listed(&api.config, &api.restreams) {
        Ok(list) => ok(StatusCode::OK, &list),
        Err(e) => Error::from(e).into_response(),
    }
}

/// `{"stream": "alice", "url": "rtmp://…/KEY", "label": "…", "rendition": "720p"}`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct NewRestream {
    stream: String,
    url: String,
    label: Option<String>,
    rendition: Option<String>,
}

async fn add_restream(State(api): State<Shared>, body: Body) -> Response {
    let example =
        "{\"stream\": \"alice\", \"url\": \"rtmp://HOST/APP/STREAM-KEY\", \"label\": \"YouTube\"}";
    let result = match json_body::<NewRestream>(body, example).await {
        Ok(n) => crate::restream::add(
            &api.config,
            &crate::restream::NewDestination {
                stream: &n.stream,
                url: &n.url,
                label: n.label.as_deref(),
                rendition: n.rendition.as_deref(),
            },
        ),
        Err(e) => Err(e),
    };
    match result {
        Ok(d) => ok(StatusCode::CREATED, &d),
        Err(e) => e.into_response(),
    }
}

/// `{"enabled": false}`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct EditRestream {
    enabled: bool,
}

async fn edit_restream(State(api): State<Shared>, Path(id): Path<String>, body: Body) -> Response {
    let result = match json_body::<EditRestream>(body, "{\"enabled\": false}").await {
        Ok(e) => crate::restream::set_enabled(&api.config, &id, e.enabled),
        Err(e) => Err(e),
    };
    match result {
        Ok(d) => ok(StatusCode::OK, &d),
        Err(e) => e.into_response(),
    }
}

async fn remove_restream(State(api): State<Shared>, Path(id): Path<String>) -> Response {
    match crate::restream::remove(&api.config, &id) {
        Ok(d) => ok(StatusCode::OK, &d),
        Err(e) => e.into_response(),
    }
}

/// Every relay with what it does now: the owner's.
async fn list_relays(State(api): State<Shared>) -> Response {
    match crate::restream::relay::listed(&api.config, &api.relays) {
        Ok(list) => ok(StatusCode::OK, &list),
        Err(e) => Error::from(e).into_response(),
    }
}

/// `{"stream": "dj", "from": "https://…", "watch": "2m", "private": false, "record": true}`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct NewRelay {
    stream: String,
    from: String,
    /// Watch the source: how often to check it ("2m"), or `true` for every 2 minutes.
    watch: Option<serde_json::Value>,
    #[serde(default)]
    private: bool,
    #[serde(default)]
    record: bool,
}

async fn add_relay(State(api): State<Shared>, body: Body) -> Response {
    let example = "{\"stream\": \"dj\", \"from\": \"https://example.net/live\", \"watch\": \"2m\"}";
    let result = match json_body::<NewRelay>(body, example).await {
        Ok(n) => match watch_of(n.watch.as_ref()) {
            Ok(watch) => crate::restream::relay::add(
                &api.config,
                &crate::restream::relay::NewRelay {
                    stream: &n.stream,
                    from: &n.from,
                    watch,
                    private: n.private,
                    record: n.record,
                },
            ),
            Err(e) => Err(e),
        },
        Err(e) => Err(e),
    };
    match result {
        Ok(r) => ok(StatusCode::CREATED, &r),
        Err(e) => e.into_response(),
    }
}

/// `"watch"`: absent, null or false for none, true for the default, or a duration.
fn watch_of(v: Option<&serde_json::Value>) -> Result<Option<Duration>, Error> {
    match v {
        None | Some(serde_json::Value::Null) | Some(serde_json::Value::Bool(false)) => Ok(None),
        Some(serde_json::Value::Bool(true)) => Ok(Some(crate::restream::relay::DEFAULT_WATCH)),
        Some(serde_json::Value::String(s)) => humantime::parse_duration(s).map(Some).map_err(|e| {
            Error::Invalid(format!(
                "\"watch\": \"{}\" is not a duration: {e}",
                s.escape_debug()
            ))
        }),
        Some(_) => Err(Error::Invalid(
            "\"watch\" is a duration such as \"2m\", or true".into(),
        )),
    }
}

async fn remove_relay(State(api): State<Shared>, Path(stream): Path<String>) -> Response {
    match crate::restream::relay::remove(&api.config, &stream) {
        Ok(r) => ok(StatusCode::OK, &r),
        Err(e) => e.into_response(),
    }
}

/// The broadcasts that ended, newest first, with their audience: the owner's.
async fn list_broadcasts(State(api): State<Shared>) -> Response {
    match crate::live::history::list(&api.config) {
        Ok(list) => ok(StatusCode::OK, &list),
        Err(e) => Error::from(e).into_response(),
    }
}

/// Every process the sidecar runs, what each costs, and the totals by role.
async fn list_processes() -> Response {
    ok(StatusCode::OK, &crate::costs::snapshot())
}

async fn metrics(State(api): State<Shared>) -> Response {
    match crate::metrics::render(&api.config, &api.live).await {
        Ok(text) => {
            let mut r = (StatusCode::OK, text).into_response();
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            r.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            r
        }
        Err(e) => Error::from(e).into_response(),
    }
}

async fn list_jobs(State(api): State<Shared>) -> Response {
    ok(StatusCode::OK, &api.jobs.list())
}

async fn get_job(State(api): State<Shared>, Path(id): Path<String>) -> Response {
    match api.jobs.get(&id) {
        Some(j) => ok(StatusCode::OK, &j),
        None => Error::NotFound(format!("no job \"{}\"", id.escape_debug())).into_response(),
    }
}

/// A request body of at most `MAX_BODY` bytes, as JSON of type `T`; `example` shows what
/// fits when it does not parse.
async fn json_body<T: serde::de::DeserializeOwned>(body: Body, example: &str) -> Result<T, Error> {
    let bytes: Bytes = axum::body::to_bytes(body, MAX_BODY)
        .await
        .map_err(|_| Error::TooLarge(format!("the request is larger than {MAX_BODY} bytes")))?;
    serde_json::from_slice(&bytes)
        .map_err(|e| Error::Invalid(format!("the body must be JSON like {example}: {e}")))
}

async fn create_job(State(api): State<Shared>, body: Body) -> Response {
    let new: NewJob = match json_body(body, "{\"url\": \"https://…\", \"kind\": \"video\"}").await
    {
        Ok(n) => n,
        Err(e) => return e.into_response(),
    };
    match api.jobs.submit(new).await {
        Ok(job) => {
            let mut r = ok(StatusCode::CREATED, &job);
            if let Ok(v) = HeaderValue::from_str(&format!("/api/jobs/{}", job.id)) {
                r.headers_mut().insert(header::LOCATION, v);
            }
            r
        }
        Err(e) => e.into_response(),
    }
}

async fn cancel_job(State(api): State<Shared>, Path(id): Path<String>) -> Response {
    match api.jobs.cancel(&id).await {
        Ok(job) => ok(StatusCode::OK, &job),
        Err(e) => e.into_response(),
    }
}

/// An item of `GET /api/library`: what a page needs to show and play it.
#[derive(Debug, Serialize)]
struct Entry {
    id: String,
    title: String,
    kind: String,
    duration: f64,
    private: bool,
    created: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    description: String,
    /// The master playlist; signed for private items.
    playlist: String,
    poster: Option<String>,
    download: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    thumbnails: Vec<Still>,
}

/// A still of a library entry: the time into the item and its URL (signed when private).
#[derive(Debug, Serialize)]
struct Still {
    at: f64,
    url: String,
}

async fn list_library(State(api): State<Shared>, headers: HeaderMap) -> Response {
    let owner = authorized(&api, &headers);
    let items = match crate::library::list_full(&api.config) {
        Ok(items) => items,
        Err(e) => return Error::from(e).into_response(),
    };
    let entries: Vec<Entry> = items
        .into_iter()
        // Private items are the owner's business.
        .filter(|m| owner || !m.private)
        .map(|m| entry(&api.config, m))
        .collect();
    ok(StatusCode::OK, &entries)
}

/// An item as the API shows it, with links signed when it is private.
fn entry(config: &Config, m: crate::library::Meta) -> Entry {
    let link = |file: &str| -> String {
        let path = format!("/vod/{}/{file}", m.id);
        if !m.private {
            return path;
        }
        crate::sign::sign(config, &path, LINK_TTL, None)
            .map(|s| s.path)
            .unwrap_or(path)
    };
    Entry {
        playlist: link(VOD_PLAYLIST),
        poster: m.poster.as_deref().map(link),
        download: m.download.as_deref().map(link),
        thumbnails: m
            .thumbnails
            .iter()
            .map(|t| Still {
                at: t.at,
                url: link(&t.file),
            })
            .collect(),
        id: m.id.clone(),
        title: m.title.clone(),
        description: m.description.clone(),
        kind: m.kind.clone(),
        duration: m.duration,
        private: m.private,
        created: m.created.clone(),
    }
}

/// `PATCH /api/library/ID` with `{"title": …, "description": …, "private": …}` (any of them).
async fn edit_item(State(api): State<Shared>, Path(id): Path<String>, body: Body) -> Response {
    let example = "{\"title\": \"…\", \"description\": \"…\", \"private\": false}";
    let result = match json_body(body, example).await {
        Ok(edit) => crate::library::edit(&api.config, &id, edit).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(m) => ok(StatusCode::OK, &entry(&api.config, m)),
        Err(e) => e.into_response(),
    }
}

/// `{"at": "5s,30s"}` or `{"at": [5, 30]}`: times into an item.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct At {
    at: Times,
}

#[derive(Debug, serde::Deserialize)]
#[serde(untagged)]
enum Times {
    Text(String),
    Seconds(Vec<f64>),
}

impl Times {
    fn parse(self) -> Result<Vec<f64>, Error> {
        match self {
            Times::Text(t) => crate::library::stills::parse_times(&t),
            Times::Seconds(s) => {
                let text: Vec<String> = s.iter().map(f64::to_string).collect();
                crate::library::stills::parse_times(&text.join(","))
            }
        }
    }
}

/// `POST /api/library/ID/thumbnails` with `{"at": "5s,30s,1m"}`: stills at those times.
async fn take_thumbnails(
    State(api): State<Shared>,
    Path(id): Path<String>,
    body: Body,
) -> Response {
    let result = async {
        let times = json_body::<At>(body, "{\"at\": \"5s,30s,1m\"}")
            .await?
            .at
            .parse()?;
        crate::library::stills::thumbnails(&api.config, &id, &times).await
    };
    match result.await {
        Ok(m) => ok(StatusCode::OK, &entry(&api.config, m)),
        Err(e) => e.into_response(),
    }
}

/// `POST /api/library/ID/poster` with `{"at": "30s"}`: the still at that time is the poster.
async fn set_poster(State(api): State<Shared>, Path(id): Path<String>, body: Body) -> Response {
    let result = async {
        let times = json_body::<At>(body, "{\"at\": \"30s\"}")
            .await?
            .at
            .parse()?;
        let [at] = times[..] else {
            return Err(Error::Invalid("a poster is taken at one time".into()));
        };
        crate::library::stills::poster(&api.config, &id, at).await
    };
    match result.await {
        Ok(m) => ok(StatusCode::OK, &entry(&api.config, m)),
        Err(e) => e.into_response(),
    }
}

async fn remove_item(State(api): State<Shared>, Path(id): Path<String>) -> Response {
    match crate::library::remove(&api.config, &id).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => e.into_response(),
    }
}

// ---------------------------------------------------------------------------------------
// Chat

/// `GET /api/streams/NAME/chat`: the last messages, as viewers see them.
async fn chat_history(State(api): State<Shared>, Path(name): Path<String>) -> Response {
    match api.chat.history(&name) {
        Ok(list) => {
            let shown: Vec<_> = list.iter().map(|m| m.shown()).collect();
            ok(StatusCode::OK, &json!({ "messages": shown }))
        }
        Err(e) => e.into_response(),
    }
}

/// The viewer's address as nginx passed it on (`X-Forwarded-For $remote_addr`): the API
/// listens on loopback, so only nginx or this machine sends it.
fn chat_client(headers: &HeaderMap) -> String {
    headers
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.rsplit(',').next())
        .and_then(|v| v.trim().parse().ok())
        .map(crate::chat::client_of)
        .unwrap_or_else(|| "this machine".into())
}

/// A page of another site may not open the chat in its visitors' names: a browser's
/// `Origin` must name the host it talks to.
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    // An Origin that cannot be read is no page of this server.
    let Ok(origin) = origin.to_str() else {
        return false;
    };
    let host = |authority: &str| {
        let a = authority.rsplit('@').next().unwrap_or(authority);
        match a.strip_prefix('[') {
            Some(v6) => v6.split(']').next().unwrap_or("").to_ascii_lowercase(),
            None => a.split(':').next().unwrap_or("").to_ascii_lowercase(),
        }
    };
    let origin_host = origin.split("://").nth(1).map(host);
    let request_host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(host);
    origin_host.is_some() && origin_host == request_host
}

/// `GET /api/streams/NAME/chat/ws`: the chat as a WebSocket (`chat::ws`).
async fn chat_socket(
    State(api): State<Shared>,
    Path(name): Path<String>,
    headers: HeaderMap,
    upgrade: Result<
        axum::extract::ws::WebSocketUpgrade,
        axum::extract::ws::rejection::WebSocketUpgradeRejection,
    >,
) -> Response {
    if let Err(e) = api.chat.history(&name) {
        return e.into_response();
    }
    if !same_origin(&headers) {
        return Error::Forbidden("the chat opens from this server's own page".into())
            .into_response();
    }
    let upgrade = match upgrade {
        Ok(u) => u,
        Err(_) => {
            return Error::Invalid("this is a WebSocket: connect with an Upgrade request".into())
                .into_response()
        }
    };
    let Some(seat) = api.chat.seat() else {
        return Error::Unavailable("the chat is full: try again in a while".into()).into_response();
    };
    let (chat, client) = (api.chat.clone(), chat_client(&headers));
    // Small buffers: a chat message is a few hundred bytes, and a thousand viewers each
    // holding tungstenite's default 128 KiB for reading would be 128 MB. Nothing waits to
    // be batched on the way out either: each event goes at once.
    upgrade
        .read_buffer_size(4096)
        .write_buffer_size(0)
        .max_message_size(crate::chat::ws::MAX_FRAME)
        .max_frame_size(crate::chat::ws::MAX_FRAME)
        .on_upgrade(move |socket| crate::chat::ws::serve(chat, name, client, socket, seat))
}

/// `GET /api/streams/NAME/chat/messages`: the owner's view, with who sent each.
async fn chat_messages(State(api): State<Shared>, Path(name): Path<String>) -> Response {
    match api.chat.history(&name) {
        Ok(list) => ok(StatusCode::OK, &json!({ "messages": list })),
        Err(e) => e.into_response(),
    }
}

async fn delete_chat_message(
    State(api): State<Shared>,
    Path((name, id)): Path<(String, String)>,
) -> Response {
    let Ok(id) = id.parse::<u64>() else {
        return Error::NotFound(format!("no message {} in this chat", id.escape_debug()))
            .into_response();
    };
    match api.chat.delete(&name, id) {
        Ok(m) => ok(StatusCode::OK, &m),
        Err(e) => e.into_response(),
    }
}

async fn chat_bans(State(api): State<Shared>) -> Response {
    ok(StatusCode::OK, &api.chat.bans())
}

/// `{"nick": "…"}`, `{"client": "203.0.113.7"}` or `{"stream": "alice", "message": 12}`
/// (the client that sent it).
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct NewBan {
    nick: Option<String>,
    client: Option<String>,
    stream: Option<String>,
    message: Option<u64>,
}

async fn add_chat_ban(State(api): State<Shared>, body: Body) -> Response {
    let example = "{\"nick\": \"troll\"}, {\"client\": \"203.0.113.7\"} or {\"stream\": \"alice\", \"message\": 12}";
    let result = async {
        let ban = match json_body::<NewBan>(body, example).await? {
            NewBan {
                nick: Some(n),
                client: None,
                stream: None,
                message: None,
            } => crate::chat::Ban::Nick(n),
            NewBan {
                nick: None,
                client: Some(c),
                stream: None,
                message: None,
            } => crate::chat::Ban::Client(c),
            NewBan {
                nick: None,
                client: None,
                stream: Some(s),
                message: Some(id),
            } => crate::chat::Ban::Client(api.chat.sender(&s, id)?),
            _ => return Err(Error::Invalid(format!("a ban is one of {example}"))),
        };
        api.chat.set_ban(&ban, true)
    };
    match result.await {
        Ok(bans) => ok(StatusCode::CREATED, &bans),
        Err(e) => e.into_response(),
    }
}

/// `DELETE /api/chat/bans/nick/NICK` or `/api/chat/bans/client/ADDRESS`.
async fn lift_chat_ban(
    State(api): State<Shared>,
    Path((kind, value)): Path<(String, String)>,
) -> Response {
    let ban = match kind.as_str() {
        "nick" => crate::chat::Ban::Nick(value),
        "client" => crate::chat::Ban::Client(value),
        _ => return Error::NotFound("bans are by nick or by client".into()).into_response(),
    };
    match api.chat.set_ban(&ban, false) {
        Ok(bans) => ok(StatusCode::OK, &bans),
        Err(e) => e.into_response(),
    }
}

// ---------------------------------------------------------------------------------------
// Listening

/// `GET /listen/NAME`: the live stream's sound, AAC (ADTS), for as long as it is live.
async fn listen(
    State(api): State<Shared>,
    Path(name): Path<String>,
    method: axum::http::Method,
) -> Response {
    let missing = || Error::NotFound(format!("\"{}\" is not live", name.escape_debug()));
    if streamedge_formats::name::check_name(name.as_bytes()).is_err() {
        return missing().into_response();
    }
    // Private streams play only through signed links: not here.
    let public = crate::keys::load(&api.config.layout().keys_file())
        .is_ok_and(|f| crate::keys::is_public(&f, &name));
    if !public || !api.feeds.contains(&name) {
        return missing().into_response();
    }
    let audio = |body: Body| {
        let mut r = Response::new(body);
        let h = r.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("audio/aac"));
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        r
    };
    // A HEAD asks what it is, and is no listener.
    if method == axum::http::Method::HEAD {
        return audio(Body::empty());
    }
    let listener = match api.stations.listen(&api.feeds, &name) {
        Ok(l) => l,
        Err(crate::live::listen::NoListener::NotLive) => return missing().into_response(),
        Err(crate::live::listen::NoListener::Full) => {
            return Error::Unavailable("too many listeners: try again in a while".into())
                .into_response()
        }
    };
    let frames = futures_util::stream::unfold(listener, |mut l| async move {
        loop {
            match l.frames.recv().await {
                Ok(frame) => return Some((Ok::<_, std::convert::Infallible>(frame), l)),
                // Behind: what it missed is gone; it goes on from here.
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
            }
        }
    });
    audio(Body::from_stream(frames))
}

// ---------------------------------------------------------------------------------------
// Scheduled broadcasts

/// `GET /api/schedule`: what has not ended yet, soonest first; private streams' only with
/// the token.
async fn list_schedule(State(api): State<Shared>, headers: HeaderMap) -> Response {
    let owner = authorized(&api, &headers);
    match crate::live::schedule::upcoming(&api.config, std::time::SystemTime::now(), !owner) {
        Ok(list) => ok(StatusCode::OK, &list),
        Err(e) => Error::from(e).into_response(),
    }
}

/// `{"stream", "title", "description", "start", "end"}`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct NewBroadcast {
    stream: String,
    title: String,
    description: Option<String>,
    start: String,
    end: String,
}

async fn add_broadcast(State(api): State<Shared>, headers: HeaderMap, body: Body) -> Response {
    if !authorized(&api, &headers) {
        return Error::Unauthorized(
            "this needs the API token (Authorization: Bearer TOKEN; `streamedge status` says where it is)".into(),
        )
        .into_response();
    }
    let example = "{\"stream\": \"alice\", \"title\": \"Friday Mix\", \"start\": \"2026-12-05T20:00:00Z\", \"end\": \"2026-12-05T22:00:00Z\"}";
    let result = match json_body::<NewBroadcast>(body, example).await {
        Ok(n) => crate::live::schedule::add(
            &api.config,
            &crate::live::schedule::NewBroadcast {
                stream: &n.stream,
                title: &n.title,
                description: n.description.as_deref(),
                start: &n.start,
                end: &n.end,
            },
            std::time::SystemTime::now(),
        ),
        Err(e) => Err(e),
    };
    match result {
        Ok(b) => ok(StatusCode::CREATED, &b),
        Err(e) => e.into_response(),
    }
}

async fn remove_broadcast(State(api): State<Shared>, Path(id): Path<String>) -> Response {
    match crate::live::schedule::remove(&api.config, &id) {
        Ok(b) => ok(StatusCode::OK, &b),
        Err(e) => e.into_response(),
    }
}
