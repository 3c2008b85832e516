//! The scenarios of issue 5. Every loop is bounded by a call count and a time limit.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use futures_util::StreamExt;
use serde_json::{Value, json};

use crate::child::{ServerProcess, rss_bytes};
use crate::load::{self, Run, Ws};
use crate::report::Row;

pub const SCENARIOS: &[&str] = &["me", "login", "isolation", "scale", "writes", "shell"];

/// Run-wide options.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Tiny counts: the CI smoke.
    pub smoke: bool,
    /// Target an existing server instead of starting one (`ws://HOST:PORT/api/current`).
    pub url: Option<String>,
    pub username: String,
    pub password: String,
    /// The target's pid (memory per session needs it with `--url`).
    pub server_pid: Option<u32>,
    /// The target's UNIX socket (the shell scenario needs it with `--url`).
    pub socket: Option<PathBuf>,
    /// The `gatehouse` binary; default: next to this one.
    pub cli: Option<PathBuf>,
    /// Sessions of the scale scenario (default 10,000; smoke 50).
    pub sessions: Option<usize>,
    /// PBKDF2 iterations of new API keys on the started server (default: the server's,
    /// 500,000; smoke: 1,000 so that a debug build stays fast).
    pub api_key_iterations: Option<u32>,
}

/// The harness state: the server under test, the echo baseline, and the rows so far.
pub struct Bench {
    pub opts: Options,
    _server: Option<ServerProcess>,
    _data_dir: Option<tempfile::TempDir>,
    echo: ServerProcess,
    pub url: String,
    pub socket: Option<PathBuf>,
    pub server_pid: Option<u32>,
    /// `<id>-<key>` of an API key of the admin user.
    api_key: String,
    api_key_id: i64,
    /// PBKDF2 iterations of the server's API keys (from `keyhash`).
    iterations: u32,
    /// `(connections, request bytes, reply bytes)` → echo row.
    baselines: HashMap<(usize, usize, usize), Row>,
    pub rows: Vec<Row>,
}

fn progress(msg: impl AsRef<str>) {
    eprintln!("[bench] {}", msg.as_ref());
}

impl Bench {
    /// Starts the server (unless `--url`) and the echo baseline, logs in, creates an API key.
    pub async fn start(opts: Options) -> anyhow::Result<Self> {
        crate::child::raise_nofile();
        let (server, data_dir, url, socket, pid) = match &opts.url {
            Some(url) => (
                None,
                None,
                url.clone(),
                opts.socket.clone(),
                opts.server_pid,
            ),
            None => {
                let dir = tempfile::tempdir()?;
                let data = dir.path().to_string_lossy().to_string();
                let mut args = vec!["serve", "--data-dir", &data, "--password", &opts.password];
                let iterations = opts
                    .api_key_iterations
                    .or(opts.smoke.then_some(1000))
                    .map(|n| n.to_string());
                if let Some(n) = &iterations {
                    args.extend(["--api-key-iterations", n.as_str()]);
                }
                let server = ServerProcess::spawn(&args)?;
                let url = format!("ws://{}/api/current", server.tcp_addr);
                let socket = Some(server.socket_path.clone());
                let pid = Some(server.pid());
                (Some(server), Some(dir), url, socket, pid)
            }
        };
        let echo = ServerProcess::spawn(&["echo"])?;
        progress(format!("server {url}, echo {}", echo.tcp_addr));
        let mut b = Self {
            opts,
            _server: server,
            _data_dir: data_dir,
            echo,
            url,
            socket,
            server_pid: pid,
            api_key: String::new(),
            api_key_id: 0,
            iterations: 0,
            baselines: HashMap::new(),
            rows: Vec::new(),
        };
        let mut admin = b.admin().await?;
        let (id, key, iterations) = b.create_key(&mut admin, "main").await?;
        b.api_key = key;
        b.api_key_id = id;
        b.iterations = iterations;
        // The first use pays PBKDF2 and fills the verified-key cache.
        let mut ws = load::connect(&b.url).await?;
        load::login(&mut ws, load::api_key_login(&b.opts.username, &b.api_key)).await?;
        load::close_all(vec![ws, admin]).await;
        Ok(b)
    }

    /// Deletes what the run created on the server (matters with `--url`).
    pub async fn finish(self) -> anyhow::Result<Vec<Row>> {
        if let Ok(mut admin) = self.admin().await {
            let _ = load::call(&mut admin, "api_key.delete", json!([self.api_key_id])).await;
            load::close_all(vec![admin]).await;
        }
        Ok(self.rows)
    }

    fn n(&self, full: usize, smoke: usize) -> usize {
        if self.opts.smoke { smoke } else { full }
    }

    fn secs(&self, full: f64, smoke: f64) -> Duration {
        Duration::from_secs_f64(if self.opts.smoke { smoke } else { full })
    }

    /// A connection logged in with the admin password.
    async fn admin(&self) -> anyhow::Result<Ws> {
        let mut ws = load::connect(&self.url).await?;
        let data = json!({"mechanism": "PASSWORD_PLAIN", "username": self.opts.username,
                          "password": self.opts.password, "login_options": {"user_info": false}});
        load::login(&mut ws, data).await?;
        Ok(ws)
    }

    /// Creates an API key for the admin user: `(id, "<id>-<key>")`.
    async fn create_key(&self, admin: &mut Ws, tag: &str) -> anyhow::Result<(i64, String, u32)> {
        let name = format!("bench-{tag}-{}-{}", std::process::id(), nonce());
        let r = load::call(
            admin,
            "api_key.create",
            json!([{"name": name, "username": self.opts.username}]),
        )
        .await?;
        let id = r
            .get("id")
            .and_then(Value::as_i64)
            .context("api_key.create: no id")?;
        let key = r
            .get("key")
            .and_then(Value::as_str)
            .context("api_key.create: no key")?;
        Ok((id, key.to_string(), iterations_of(&r)))
    }

    /// `n` connections logged in with the cached API key, `parallel` at a time.
    async fn sessions(&self, n: usize, parallel: usize) -> anyhow::Result<Vec<Ws>> {
        let url = self.url.clone();
        let data = load::api_key_login(&self.opts.username, &self.api_key);
        let mut out = Vec::with_capacity(n);
        let mut pending = futures_util::stream::iter((0..n).map(|_| {
            let url = url.clone();
            let data = data.clone();
            async move {
                let mut ws = load::connect(&url).await?;
                load::login(&mut ws, data).await?;
                anyhow::Ok(ws)
            }
        }))
        .buffer_unordered(parallel.max(1));
        while let Some(ws) = pending.next().await {
            out.push(ws?);
        }
        Ok(out)
    }

    /// The echo baseline for `conns` connections sending `request` and receiving `reply_len`
    /// bytes; measured once per shape and run, with the same client code and call count.
    async fn baseline(
        &mut self,
        conns: usize,
        calls: usize,
        request: &str,
        reply_len: usize,
    ) -> anyhow::Result<Row> {
        let key = (conns, request.len(), reply_len);
        if let Some(r) = self.baselines.get(&key) {
            return Ok(r.clone());
        }
        let url = format!("ws://{}/echo?size={reply_len}", self.echo.tcp_addr);
        let ws = load::connect_many(&url, conns, 64).await?;
        let req = request.to_string();
        let (_, ws) = load::closed_loop(ws, calls.min(50), self.secs(5.0, 1.0), {
            let req = req.clone();
            move |_| req.clone()
        })
        .await?;
        let (run, ws) =
            load::closed_loop(ws, calls, self.secs(20.0, 2.0), move |_| req.clone()).await?;
        load::close_all(ws).await;
        let row = Row::from_run(
            format!("echo baseline ({} B → {reply_len} B)", request.len()),
            conns,
            &run,
        );
        self.baselines.insert(key, row.clone());
        self.rows.push(row.clone());
        Ok(row)
    }

    fn push_vs(&mut self, mut row: Row, base: &Row) {
        if let (Some(t), Some(b)) = (row.throughput, base.throughput) {
            row.ratio = Some(t / b);
        }
        self.rows.push(row);
    }

    // -----------------------------------------------------------------------------------------

    /// (1) `auth.me` on pre-authenticated connections.
    pub async fn me(&mut self) -> anyhow::Result<()> {
        let levels: &[(usize, usize)] = if self.opts.smoke {
            &[(1, 20), (4, 20)]
        } else {
            &[(1, 5_000), (16, 2_000), (64, 1_000), (256, 250)]
        };
        for &(conns, per_conn) in levels {
            progress(format!("auth.me × {conns} connections"));
            let mut ws = self.sessions(conns, 32).await?;
            let request = load::request(0, "auth.me", &json!([]));
            let Some(first) = ws.first_mut() else {
                bail!("no connections")
            };
            let reply = load::round_trip(first, request.clone()).await?;
            if !reply.contains("\"result\"") {
                bail!("auth.me failed: {reply}");
            }
            let base = self
                .baseline(conns, per_conn, &request, reply.len())
                .await?;
            let frame = |i: u64| load::request(i, "auth.me", &json!([]));
            let (_, ws2) =
                load::closed_loop(ws, per_conn.min(50), self.secs(5.0, 1.0), frame).await?;
            let (run, ws) = load::closed_loop(ws2, per_conn, self.secs(20.0, 2.0), frame).await?;
            ws.len()
                .eq(&conns)
                .then_some(())
                .context("lost connections")?;
            load::close_all(ws).await;
            let row =
                Row::from_run("auth.me", conns, &run).note(format!("reply {} B", reply.len()));
            self.push_vs(row, &base);
        }
        Ok(())
    }

    /// Times one login per fresh, unauthenticated connection (connecting is not timed).
    async fn logins(&mut self, label: &str, datas: Vec<Value>) -> anyhow::Result<()> {
        let n = datas.len();
        let mut run = Run {
            latencies_ns: Vec::with_capacity(n),
            wall: Duration::ZERO,
            errors: 0,
        };
        let mut sample = (String::new(), 0usize);
        let deadline = Instant::now() + self.secs(60.0, 10.0);
        for chunk in datas.chunks(250) {
            if Instant::now() >= deadline {
                break;
            }
            let mut conns = load::connect_many(&self.url, chunk.len(), 16).await?;
            for (ws, data) in conns.iter_mut().zip(chunk) {
                let req = load::request(1, "auth.login_ex", &json!([data]));
                let t0 = Instant::now();
                let reply = load::round_trip(ws, req.clone()).await?;
                let dt = t0.elapsed();
                if !reply.contains("\"SUCCESS\"") {
                    bail!("{label}: {reply}");
                }
                run.latencies_ns.push(dt.as_nanos() as u64);
                run.wall += dt;
                sample = (req, reply.len());
            }
            load::close_all(conns).await;
        }
        let base = self
            .baseline(1, n.clamp(200, 2000), &sample.0, sample.1)
            .await?;
        self.push_vs(
            Row::from_run(label, 1, &run).note("sequential, fresh connection each"),
            &base,
        );
        Ok(())
    }

    /// (2) Logins: password (KDF every time), API key cold and cached, token, SCRAM.
    pub async fn login(&mut self) -> anyhow::Result<()> {
        let user = self.opts.username.clone();
        progress("login: PASSWORD_PLAIN");
        let pw = json!({"mechanism": "PASSWORD_PLAIN", "username": user,
                        "password": self.opts.password, "login_options": {"user_info": false}});
        self.logins(
            "login PASSWORD_PLAIN (cold: KDF each time)",
            vec![pw; self.n(6, 1)],
        )
        .await?;

        progress("login: API_KEY_PLAIN cold");
        let mut admin = self.admin().await?;
        let mut cold = Vec::new();
        for i in 0..self.n(3, 1) {
            cold.push(self.create_key(&mut admin, &format!("cold{i}")).await?);
        }
        let datas = cold
            .iter()
            .map(|(_, k, _)| load::api_key_login(&user, k))
            .collect();
        let label = format!("login API_KEY_PLAIN cold (PBKDF2 {})", self.iterations);
        self.logins(&label, datas).await?;
        for (id, _, _) in &cold {
            load::call(&mut admin, "api_key.delete", json!([id])).await?;
        }

        progress("login: API_KEY_PLAIN cached");
        let data = load::api_key_login(&user, &self.api_key);
        self.logins("login API_KEY_PLAIN cached", vec![data; self.n(2000, 5)])
            .await?;

        progress("login: TOKEN_PLAIN");
        // A session that logged in with a token consumes it when it ends: one token per login.
        let mut tokens = Vec::new();
        for _ in 0..self.n(2000, 5) {
            let t = load::call(
                &mut admin,
                "auth.generate_token",
                json!([600, {}, true, false]),
            )
            .await?;
            let t = t.as_str().context("auth.generate_token: not a string")?;
            tokens.push(json!({"mechanism": "TOKEN_PLAIN", "token": t,
                               "login_options": {"user_info": false}}));
        }
        self.logins("login TOKEN_PLAIN", tokens).await?;

        progress("login: SCRAM");
        self.scram(self.n(1000, 3)).await?;
        load::close_all(vec![admin]).await;
        Ok(())
    }

    /// SCRAM-SHA-512 with the client keys derived once (as a real client caches them).
    async fn scram(&mut self, n: usize) -> anyhow::Result<()> {
        use gatehouse_core::scram::{ClientCredential, NONCE_LEN, ScramClient};
        let (id, key_part) = gatehouse_core::apikey::parse_raw_key(&self.api_key)
            .map_err(|e| anyhow::anyhow!("bad key: {e:?}"))?;
        let key_part = key_part.to_string();
        let user = self.opts.username.clone();
        let mut keys = None;
        let mut run = Run {
            latencies_ns: Vec::new(),
            wall: Duration::ZERO,
            errors: 0,
        };
        let deadline = Instant::now() + self.secs(60.0, 10.0);
        let mut sample = (String::new(), 0);
        let mut done = 0;
        while done < n && Instant::now() < deadline {
            let batch = (n - done).min(250);
            let mut conns = load::connect_many(&self.url, batch, 16).await?;
            for ws in &mut conns {
                let nonce: [u8; NONCE_LEN] = std::array::from_fn(|i| (i as u8) ^ (done as u8));
                let cred = match &keys {
                    Some(k) => ClientCredential::Keys(Clone::clone(k)),
                    None => ClientCredential::RawKey(key_part.clone().into()),
                };
                let client = ScramClient::new(&user, id, cred, &nonce)
                    .with_iteration_bounds(1, gatehouse_core::scram::CLIENT_MAX_ITERATIONS);
                let first = json!({"mechanism": "SCRAM", "scram_type": "CLIENT_FIRST_MESSAGE",
                                   "rfc_str": client.client_first()});
                let t0 = Instant::now();
                let r = load::call(ws, "auth.login_ex", json!([first])).await?;
                let sf = r
                    .get("rfc_str")
                    .and_then(Value::as_str)
                    .context("no server-first")?;
                let t_client = Instant::now();
                let fin = client
                    .handle_server_first(sf)
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
                let client_cost = t_client.elapsed();
                if keys.is_none() {
                    keys = Some(derive_keys(&key_part, sf)?);
                }
                let final_msg = json!({"mechanism": "SCRAM", "scram_type": "CLIENT_FINAL_MESSAGE",
                                       "rfc_str": fin.message});
                let req = load::request(1, "auth.login_ex", &json!([final_msg]));
                let reply = load::round_trip(ws, req.clone()).await?;
                let dt = t0.elapsed().saturating_sub(client_cost);
                let v: Value = serde_json::from_str(&reply)?;
                let server_final = v["result"]["rfc_str"]
                    .as_str()
                    .with_context(|| format!("SCRAM: {reply}"))?;
                fin.verify_server_final(server_final)
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
                if done > 0 {
                    // The first exchange paid the client-side PBKDF2; it is not the server's.
                    run.latencies_ns.push(dt.as_nanos() as u64);
                    run.wall += dt;
                }
                sample = (req, reply.len());
                done += 1;
            }
            load::close_all(conns).await;
        }
        let base = self
            .baseline(1, n.clamp(200, 2000), &sample.0, sample.1)
            .await?;
        let row = Row::from_run("login SCRAM (2 round trips)", 1, &run)
            .note("client keys cached; server time only");
        self.push_vs(row, &base);
        Ok(())
    }

    /// (3) Isolation: `auth.me` at a fixed rate, quiet and then during a password-login storm.
    pub async fn isolation(&mut self) -> anyhow::Result<()> {
        let (conns, storm_conns) = (self.n(16, 2), self.n(4, 1));
        let period = Duration::from_millis(10);
        let limit = self.secs(6.0, 0.5);
        let calls = (limit.as_millis() / period.as_millis()) as usize;
        let rate = conns as f64 / period.as_secs_f64();
        let frame = |i: u64| load::request(i, "auth.me", &json!([]));

        progress("isolation: quiet");
        let ws = self.sessions(conns, 16).await?;
        let (run, ws) = load::paced(ws, calls, period, limit, frame).await?;
        self.rows.push(
            Row::from_run(
                format!("isolation: auth.me at {rate:.0}/s, quiet"),
                conns,
                &run,
            )
            .note("open loop"),
        );

        progress("isolation: during a PASSWORD_PLAIN storm");
        let stop = Arc::new(AtomicBool::new(false));
        let mut storm = Vec::new();
        for _ in 0..storm_conns {
            let mut sw = load::connect(&self.url).await?;
            let stop = stop.clone();
            let data = json!({"mechanism": "PASSWORD_PLAIN", "username": self.opts.username,
                              "password": self.opts.password});
            let max = self.n(1000, 20);
            storm.push(tokio::spawn(async move {
                let mut lat = Vec::new();
                let req = load::request(1, "auth.login_ex", &json!([data]));
                for _ in 0..max {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let t0 = Instant::now();
                    let reply = load::round_trip(&mut sw, req.clone()).await?;
                    if !reply.contains("\"SUCCESS\"") {
                        bail!("storm login failed: {reply}");
                    }
                    lat.push(t0.elapsed().as_nanos() as u64);
                }
                load::close_all(vec![sw]).await;
                anyhow::Ok(lat)
            }));
        }
        // Let the storm fill the KDF pool before measuring.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let t0 = Instant::now();
        let (run, ws) = load::paced(ws, calls, period, limit, frame).await?;
        stop.store(true, Ordering::Relaxed);
        let mut storm_run = Run {
            latencies_ns: Vec::new(),
            wall: t0.elapsed(),
            errors: 0,
        };
        for t in storm {
            storm_run.latencies_ns.extend(t.await??);
        }
        load::close_all(ws).await;
        self.rows.push(
            Row::from_run(
                format!("isolation: auth.me at {rate:.0}/s, during storm"),
                conns,
                &run,
            )
            .note("target p99 < 5 ms"),
        );
        self.rows.push(
            Row::from_run(
                "isolation: the storm (PASSWORD_PLAIN)",
                storm_conns,
                &storm_run,
            )
            .note("closed loop, KDF on the bounded pool"),
        );
        Ok(())
    }

    /// (4) Scale: many concurrent authenticated sessions; memory per session, `auth.sessions`.
    pub async fn scale(&mut self) -> anyhow::Result<()> {
        let n = self.opts.sessions.unwrap_or(self.n(10_000, 50));
        let mut admin = self.admin().await?;
        // Settle, then measure the server before.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let before = self.server_pid.map(rss_bytes).transpose()?;
        progress(format!("scale: opening {n} sessions"));
        let t0 = Instant::now();
        let sessions = self.sessions(n, 64).await?;
        let setup = t0.elapsed();
        tokio::time::sleep(Duration::from_millis(300)).await;
        let after = self.server_pid.map(rss_bytes).transpose()?;
        let mem_note = match (before, after) {
            (Some(b), Some(a)) => format!(
                "server RSS {:.1} → {:.1} MiB: {:.1} KiB/session (target < 16 KiB)",
                b as f64 / 1048576.0,
                a as f64 / 1048576.0,
                a.saturating_sub(b) as f64 / 1024.0 / n as f64
            ),
            _ => "memory: no server pid (use --server-pid)".into(),
        };
        let setup_run = Run {
            latencies_ns: Vec::new(),
            wall: setup,
            errors: 0,
        };
        let mut row = Row::from_run(
            format!("scale: {n} sessions (connect + API-key login)"),
            n,
            &setup_run,
        );
        row.calls = n;
        row.throughput = Some(n as f64 / setup.as_secs_f64());
        self.rows.push(row.note(mem_note));

        for (label, filters) in [
            ("all", json!([])),
            ("filter current=true", json!([["current", "=", true]])),
        ] {
            let calls = self.n(20, 2);
            let req = load::request(1, "auth.sessions", &json!([filters]));
            let mut run = Run {
                latencies_ns: Vec::new(),
                wall: Duration::ZERO,
                errors: 0,
            };
            let mut size = 0;
            for _ in 0..calls {
                let t0 = Instant::now();
                let reply = load::round_trip(&mut admin, req.clone()).await?;
                let dt = t0.elapsed();
                if reply.contains("\"error\":") {
                    bail!("auth.sessions: {reply}");
                }
                size = reply.len();
                run.latencies_ns.push(dt.as_nanos() as u64);
                run.wall += dt;
            }
            let row = Row::from_run(format!("auth.sessions, {n} sessions, {label}"), 1, &run).note(
                format!("reply {:.1} KiB; target < 20 ms", size as f64 / 1024.0),
            );
            self.rows.push(row);
        }
        progress("scale: closing");
        load::close_all(sessions).await;
        load::close_all(vec![admin]).await;
        Ok(())
    }

    /// (5) Durable writes, sequential on one connection.
    pub async fn writes(&mut self) -> anyhow::Result<()> {
        let mut admin = self.admin().await?;
        let me = load::call(
            &mut admin,
            "user.query",
            json!([[["username", "=", self.opts.username]]]),
        )
        .await?;
        let uid = me[0]["id"].as_i64().context("user.query: no id")?;
        let full_name = me[0]["full_name"].clone();

        progress("writes: api_key.create");
        let mut run = Run {
            latencies_ns: Vec::new(),
            wall: Duration::ZERO,
            errors: 0,
        };
        let mut created = Vec::new();
        for i in 0..self.n(5, 1) {
            let t0 = Instant::now();
            let (id, _, _) = self.create_key(&mut admin, &format!("w{i}")).await?;
            let dt = t0.elapsed();
            run.latencies_ns.push(dt.as_nanos() as u64);
            run.wall += dt;
            created.push(id);
        }
        for id in created {
            load::call(&mut admin, "api_key.delete", json!([id])).await?;
        }
        let note = format!("PBKDF2 {} + commit", self.iterations);
        self.rows
            .push(Row::from_run("write: api_key.create", 1, &run).note(note));

        for (label, count) in [
            ("user.update", self.n(300, 3)),
            ("auth.set_attribute", self.n(500, 3)),
        ] {
            progress(format!("writes: {label}"));
            let mut run = Run {
                latencies_ns: Vec::new(),
                wall: Duration::ZERO,
                errors: 0,
            };
            let deadline = Instant::now() + self.secs(30.0, 5.0);
            for i in 0..count {
                if Instant::now() >= deadline {
                    break;
                }
                let params = if label == "user.update" {
                    json!([uid, {"full_name": format!("Bench {i}")}])
                } else {
                    json!(["bench", i])
                };
                let t0 = Instant::now();
                load::call(&mut admin, label, params).await?;
                let dt = t0.elapsed();
                run.latencies_ns.push(dt.as_nanos() as u64);
                run.wall += dt;
            }
            self.rows
                .push(Row::from_run(format!("write: {label}"), 1, &run).note("durable commit"));
        }
        if full_name.is_string() {
            let _ = load::call(
                &mut admin,
                "user.update",
                json!([uid, {"full_name": full_name}]),
            )
            .await;
        }
        load::close_all(vec![admin]).await;
        Ok(())
    }

    /// (6) `gatehouse -c "auth me"`: process wall time, start to exit.
    pub async fn shell(&mut self) -> anyhow::Result<()> {
        let Some(socket) = self.socket.clone() else {
            self.rows.push(Row {
                scenario: "shell: gatehouse -c \"auth me\"".into(),
                note: "skipped: no UNIX socket (use --socket)".into(),
                ..Default::default()
            });
            return Ok(());
        };
        let (bin, prefix, label) = cli_binary(self.opts.cli.as_ref())?;
        let n = self.n(20, 2);
        let mut run = Run {
            latencies_ns: Vec::new(),
            wall: Duration::ZERO,
            errors: 0,
        };
        for _ in 0..n {
            let mut cmd = std::process::Command::new(&bin);
            cmd.args(&prefix)
                .arg("--socket")
                .arg(&socket)
                .args(["-c", "auth me"])
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped());
            let t0 = Instant::now();
            let out = tokio::task::spawn_blocking(move || cmd.output()).await??;
            let dt = t0.elapsed();
            if !out.status.success() {
                bail!(
                    "gatehouse -c \"auth me\" failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            run.latencies_ns.push(dt.as_nanos() as u64);
            run.wall += dt;
        }
        let row = Row::from_run("shell: gatehouse -c \"auth me\"", 1, &run)
            .note(format!("{label}; target < 20 ms"));
        self.rows.push(row);
        Ok(())
    }
}

/// The iteration count in an `api_key.create` entry's `keyhash` (`$scram-sha512$N$…`).
fn iterations_of(entry: &Value) -> u32 {
    entry
        .get("keyhash")
        .and_then(Value::as_str)
        .and_then(|h| h.split('$').nth(2))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// SCRAM client keys from the key part and the server-first message (salt, iterations).
fn derive_keys(
    key_part: &str,
    server_first: &str,
) -> anyhow::Result<gatehouse_core::scram::ScramKeys> {
    use base64::Engine as _;
    let mut salt = None;
    let mut iterations = None;
    for part in server_first.split(',') {
        if let Some(s) = part.strip_prefix("s=") {
            salt = Some(base64::engine::general_purpose::STANDARD.decode(s)?);
        } else if let Some(i) = part.strip_prefix("i=") {
            iterations = Some(i.parse::<u32>()?);
        }
    }
    let (Some(salt), Some(iterations)) = (salt, iterations) else {
        bail!("server-first without salt or iterations: {server_first}");
    };
    Ok(gatehouse_core::apikey::derive(key_part, &salt, iterations))
}

/// The `gatehouse` binary next to this one, or this binary's `cli` subcommand.
fn cli_binary(explicit: Option<&PathBuf>) -> anyhow::Result<(PathBuf, Vec<String>, String)> {
    if let Some(p) = explicit {
        return Ok((p.clone(), Vec::new(), p.display().to_string()));
    }
    let exe = std::env::current_exe()?;
    if let Some(sibling) = exe.parent().map(|d| d.join("gatehouse"))
        && sibling.is_file()
    {
        return Ok((sibling, Vec::new(), "target binary `gatehouse`".into()));
    }
    Ok((
        exe,
        vec!["cli".into()],
        "`gatehouse` not built: gatehouse-bench cli (same code)".into(),
    ))
}

fn nonce() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos().into())
}
