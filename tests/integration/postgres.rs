//! The PostgreSQL conversation store against the real server: replicas in separate OS
//! processes (this test binary, re-run as a "replica" that takes commands on stdin), single
//! activation, takeover after a `kill -9`, fencing of a stale holder, an unreachable
//! database, corrupt snapshots, and many conversations under a live cap.
//!
//! The database comes from `AGY_BRIDGE_TEST_DATABASE_URL` (default: the local server's `test`
//! database); every test works in a schema of its own. An unreachable database fails the
//! tests, it never skips them.

use crate::common;

use std::{
    process::Stdio,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use agy_bridge::{
    AgentConfig, AgentErrorKind, Bridge, BridgeConfig, Error, ModelConfig, StoreConfig,
    testing::{Reply, ScriptedModel},
};
use common::{HANG, collect};
use futures::StreamExt as _;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

fn database_url() -> String {
    std::env::var("AGY_BRIDGE_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// A schema of the test's own, dropped at the end.
struct Schema(String);

impl Schema {
    async fn new() -> Self {
        let (client, connection) = tokio_postgres::connect(&database_url(), tokio_postgres::NoTls)
            .await
            .unwrap_or_else(|e| panic!("PostgreSQL at {} is unreachable: {e}", database_url()));
        tokio::spawn(connection);
        client.simple_query("SELECT 1").await.unwrap();
        Self(format!("t_{}", uuid::Uuid::new_v4().simple()))
    }

    async fn sql(&self, query: &str) -> Vec<tokio_postgres::SimpleQueryMessage> {
        let (client, connection) = tokio_postgres::connect(&database_url(), tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        client
            .simple_query(&query.replace("{s}", &self.0))
            .await
            .unwrap()
    }

    async fn drop_it(self) {
        self.sql("DROP SCHEMA IF EXISTS {s} CASCADE").await;
    }

    fn store(&self) -> StoreConfig {
        StoreConfig::postgres(database_url()).schema(&self.0)
    }
}

fn first_value(rows: &[tokio_postgres::SimpleQueryMessage]) -> Option<String> {
    rows.iter().find_map(|m| match m {
        tokio_postgres::SimpleQueryMessage::Row(row) => row.get(0).map(str::to_owned),
        _ => None,
    })
}

fn bridge_config(data: &tempfile::TempDir, schema: &Schema) -> BridgeConfig {
    common::config(data).store(schema.store())
}

fn agent_config(model_url: &str) -> AgentConfig {
    AgentConfig::new(ModelConfig::openai_compatible(model_url, "scripted"))
}

/// Runs a replica: a bridge in its own OS process, driven over stdin/stdout.
struct Replica {
    child: tokio::process::Child,
    stdin: tokio::process::ChildStdin,
    stdout: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
    _data: tempfile::TempDir,
}

impl Replica {
    fn start(schema: &Schema, model: &ScriptedModel, holder: &str, lease_ttl: Duration) -> Self {
        Self::start_waiting(schema, model, holder, lease_ttl, Duration::from_secs(30))
    }

    fn start_waiting(
        schema: &Schema,
        model: &ScriptedModel,
        holder: &str,
        lease_ttl: Duration,
        lease_wait: Duration,
    ) -> Self {
        let data = tempfile::tempdir().unwrap();
        let mut child = tokio::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "postgres::replica",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("AGY_TEST_SCHEMA", &schema.0)
            .env("AGY_TEST_MODEL_URL", model.base_url())
            .env("AGY_TEST_DATA_DIR", data.path())
            .env("AGY_TEST_HOLDER", holder)
            .env("AGY_TEST_LEASE_TTL_MS", lease_ttl.as_millis().to_string())
            .env("AGY_TEST_LEASE_WAIT_MS", lease_wait.as_millis().to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap()).lines();
        Self {
            child,
            stdin,
            stdout,
            _data: data,
        }
    }

    /// Sends one command and returns the replica's reply (`ok …` or `err …`).
    async fn send(&mut self, command: &str) -> String {
        self.stdin
            .write_all(format!("{command}\n").as_bytes())
            .await
            .unwrap();
        self.reply().await
    }

    async fn reply(&mut self) -> String {
        tokio::time::timeout(HANG * 2, async {
            loop {
                let line = self
                    .stdout
                    .next_line()
                    .await
                    .unwrap()
                    .expect("the replica ended");
                // (libtest's own "test replica ... " may precede the first reply on its line.)
                if let Some(at) = line.find("REPLY ") {
                    return line[at + "REPLY ".len()..].to_owned();
                }
            }
        })
        .await
        .expect("the replica answers")
    }

    fn pid(&self) -> i32 {
        i32::try_from(self.child.id().unwrap()).unwrap()
    }

    fn signal(&self, signal: libc::c_int) {
        // SAFETY: kill has no memory-safety preconditions.
        unsafe {
            libc::kill(self.pid(), signal);
        }
    }

    async fn exit(mut self) {
        let _ = self.send("exit").await;
        let _ = tokio::time::timeout(HANG, self.child.wait()).await;
    }
}

/// The replica process: a bridge on the store, taking one command per line on stdin:
/// `create`, `open <id>`, `chat <text>`, `start <text>` (a turn left running),
/// `history`, `hibernate`, `close`, `exit`. Each answer is one `REPLY ok …` / `REPLY err …`
/// line.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "run as a child process by the tests of this file"]
async fn replica() {
    let var = |name| std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set"));
    let schema = Schema(var("AGY_TEST_SCHEMA"));
    let model_url = var("AGY_TEST_MODEL_URL");
    let millis = |name| Duration::from_millis(var(name).parse().unwrap());
    let config = BridgeConfig::default()
        .data_dir(var("AGY_TEST_DATA_DIR"))
        .store(schema.store())
        .holder(var("AGY_TEST_HOLDER"))
        .lease_ttl(millis("AGY_TEST_LEASE_TTL_MS"))
        .lease_wait(millis("AGY_TEST_LEASE_WAIT_MS"));
    let mut agent: Option<agy_bridge::Agent> = None;
    let bridge = Bridge::start(config).await.unwrap();
    let mut running = Vec::new();
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let say = |text: String| println!("REPLY {}", text.replace('\n', " "));
    while let Some(line) = lines.next_line().await.unwrap() {
        let (command, rest) = line.split_once(' ').unwrap_or((&line, ""));
        if agent.is_none()
            && ["chat", "tally", "start", "history", "hibernate", "close"].contains(&command)
        {
            say("err no agent".into());
            continue;
        }
        let reply = match command {
            "create" => match bridge.create_agent(agent_config(&model_url)).await {
                Ok(a) => {
                    let id = a.conversation_id().to_owned();
                    agent = Some(a);
                    Ok(id)
                }
                Err(e) => Err(e),
            },
            "open" => match bridge.open_agent(rest, agent_config(&model_url)).await {
                Ok(a) => {
                    agent = Some(a);
                    Ok(String::new())
                }
                Err(e) => Err(e),
            },
            "chat" => {
                let reply = agent.as_ref().unwrap().chat(rest).await;
                match reply {
                    Ok(reply) => collect(reply).await.1.map(|o| o.text),
                    Err(e) => Err(e),
                }
            }
            // A turn; answers its input tokens and the conversation's running total of them.
            "tally" => match agent.as_ref().unwrap().chat(rest).await {
                Ok(reply) => collect(reply).await.1.map(|o| {
                    let input =
                        |u: Option<agy_bridge::Usage>| u.and_then(|u| u.prompt_tokens).unwrap_or(0);
                    format!(
                        "{} {} {}",
                        input(o.usage),
                        input(o.conversation_usage),
                        o.text
                    )
                }),
                Err(e) => Err(e),
            },
            "start" => match agent.as_ref().unwrap().chat(rest).await {
                Ok(reply) => {
                    running.push(reply);
                    Ok(String::new())
                }
                Err(e) => Err(e),
            },
            "history" => agent.as_ref().unwrap().history().await.map(|steps| {
                steps
                    .iter()
                    .map(|s| s.content.clone())
                    .collect::<Vec<_>>()
                    .join(" | ")
            }),
            "hibernate" => agent
                .as_ref()
                .unwrap()
                .disconnect()
                .await
                .map(|()| String::new()),
            "close" => agent.take().unwrap().close().await.map(|()| String::new()),
            "exit" => {
                say("ok".into());
                break;
            }
            other => panic!("unknown command {other}"),
        };
        match reply {
            Ok(text) => say(format!("ok {text}")),
            Err(e) => say(format!("err {e:?}")),
        }
    }
    bridge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn two_processes_take_turns_on_one_conversation() {
    let schema = Schema::new().await;
    let model = ScriptedModel::start().await.unwrap();
    let ttl = Duration::from_secs(10);
    let mut a = Replica::start(&schema, &model, "replica-a", ttl);
    let mut b = Replica::start(&schema, &model, "replica-b", ttl);
    let id = a.send("create").await;
    let id = id.strip_prefix("ok ").unwrap().to_owned();
    let mut input_so_far = 0;
    for round in 1..=4 {
        let replica = if round % 2 == 1 { &mut a } else { &mut b };
        if round > 1 {
            assert_eq!(replica.send(&format!("open {id}")).await, "ok ");
        }
        for turn in [format!("turn {round}"), format!("and {round}")] {
            let reply = replica.send(&format!("tally {turn}")).await;
            let mut parts = reply.strip_prefix("ok ").unwrap().splitn(3, ' ');
            let mut number = || parts.next().unwrap().parse::<u64>().unwrap();
            let (input, total) = (number(), number());
            assert_eq!(parts.next(), Some(format!("You said: {turn}").as_str()));
            // The conversation's running usage total moved from replica to replica with it.
            input_so_far += input;
            assert_eq!(total, input_so_far, "{reply}");
        }
        assert_eq!(replica.send("close").await, "ok ");
    }
    for replica in [&mut a, &mut b] {
        assert_eq!(replica.send(&format!("open {id}")).await, "ok ");
        let history = replica.send("history").await;
        for round in 1..=4 {
            assert!(history.contains(&format!("turn {round}")), "{history}");
        }
        assert_eq!(replica.send("close").await, "ok ");
    }
    a.exit().await;
    b.exit().await;
    schema.drop_it().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn two_processes_opening_one_conversation_at_once_one_wins() {
    let schema = Schema::new().await;
    let model = ScriptedModel::start().await.unwrap();
    let data = tempfile::tempdir().unwrap();
    let bridge = Bridge::start(bridge_config(&data, &schema)).await.unwrap();
    let agent = bridge
        .create_agent(agent_config(&model.base_url()))
        .await
        .unwrap();
    let id = agent.conversation_id().to_owned();
    common::chat_ok(&agent, "hello").await;
    agent.close().await.unwrap();
    bridge.shutdown().await;

    let (ttl, no_wait) = (Duration::from_secs(30), Duration::ZERO);
    let mut a = Replica::start_waiting(&schema, &model, "replica-a", ttl, no_wait);
    let mut b = Replica::start_waiting(&schema, &model, "replica-b", ttl, no_wait);
    // Both bridges are up (each answers a command); the two opens go out together.
    assert!(a.send("history").await.starts_with("err"));
    assert!(b.send("history").await.starts_with("err"));
    let command = format!("open {id}\n");
    a.stdin.write_all(command.as_bytes()).await.unwrap();
    b.stdin.write_all(command.as_bytes()).await.unwrap();
    let (ra, rb) = tokio::join!(a.reply(), b.reply());
    let won = [&ra, &rb].iter().filter(|r| *r == &"ok ").count();
    let busy = [&ra, &rb]
        .iter()
        .filter(|r| r.starts_with("err ConversationBusy"))
        .count();
    assert_eq!((won, busy), (1, 1), "{ra}\n{rb}");
    a.exit().await;
    b.exit().await;
    schema.drop_it().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn after_a_kill_9_mid_turn_another_process_takes_over_with_every_completed_turn() {
    let schema = Schema::new().await;
    let model = ScriptedModel::start().await.unwrap();
    let ttl = Duration::from_secs(3);
    let mut a = Replica::start(&schema, &model, "replica-a", ttl);
    let id = a
        .send("create")
        .await
        .strip_prefix("ok ")
        .unwrap()
        .to_owned();
    for turn in ["first", "second"] {
        assert!(a.send(&format!("chat {turn}")).await.starts_with("ok "));
    }
    model.push(agy_bridge::testing::Reply::Stall);
    let asked = model.requests().len();
    assert_eq!(a.send("start third, never answered").await, "ok ");
    common::eventually("the model gets the third turn", || {
        model.requests().len() > asked
    })
    .await;
    a.signal(libc::SIGKILL);
    drop(a);

    // The lease expires (3 s): another process takes over, waiting for it.
    let mut b = Replica::start(&schema, &model, "replica-b", ttl);
    assert_eq!(b.send(&format!("open {id}")).await, "ok ");
    let history = b.send("history").await;
    assert!(
        history.contains("first") && history.contains("second"),
        "{history}"
    );
    assert!(b.send("chat fourth").await.starts_with("ok "));
    b.exit().await;
    let holder = first_value(
        &schema
            .sql(&format!(
                "SELECT holder FROM {{s}}.snapshots WHERE conversation_id = '{id}' ORDER BY version DESC LIMIT 1"
            ))
            .await,
    );
    assert_eq!(holder.as_deref(), Some("replica-b"));
    schema.drop_it().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stale_holder_can_never_overwrite_newer_state() {
    let schema = Schema::new().await;
    let model = ScriptedModel::start().await.unwrap();
    let ttl = Duration::from_secs(2);
    let mut a = Replica::start(&schema, &model, "replica-a", ttl);
    let id = a
        .send("create")
        .await
        .strip_prefix("ok ")
        .unwrap()
        .to_owned();
    assert!(a.send("chat from a, before").await.starts_with("ok "));
    // A freezes (a long GC pause, a stopped VM): its lease is not renewed and expires.
    a.signal(libc::SIGSTOP);
    let mut b = Replica::start(&schema, &model, "replica-b", ttl);
    assert_eq!(b.send(&format!("open {id}")).await, "ok ");
    assert!(b.send("chat from b").await.starts_with("ok "));
    let version = first_value(
        &schema
            .sql(&format!(
                "SELECT version FROM {{s}}.conversations WHERE id = '{id}'"
            ))
            .await,
    );
    // A wakes up and carries on as if nothing happened: refused.
    a.signal(libc::SIGCONT);
    let reply = a.send("chat from a, stale").await;
    assert!(
        reply.starts_with("err") && reply.contains("LeaseLost"),
        "{reply}"
    );
    let after = first_value(
        &schema
            .sql(&format!(
                "SELECT version FROM {{s}}.conversations WHERE id = '{id}'"
            ))
            .await,
    );
    assert_eq!(after, version, "the stale holder saved nothing");
    let history = b.send("history").await;
    assert!(
        history.contains("from b") && !history.contains("from a, stale"),
        "{history}"
    );
    a.exit().await;
    b.exit().await;
    schema.drop_it().await;
}

/// A TCP proxy to PostgreSQL that the test can cut (closing every connection and refusing
/// new ones) and restore: an unreachable or restarting database, for real.
struct Proxy {
    port: u16,
    cut: Arc<AtomicBool>,
    kill: tokio::sync::watch::Sender<u64>,
}

impl Proxy {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let cut = Arc::new(AtomicBool::new(false));
        let (kill, watch) = tokio::sync::watch::channel(0u64);
        let target: tokio_postgres::Config = database_url().parse().unwrap();
        let upstream = match &target.get_hosts()[0] {
            tokio_postgres::config::Host::Tcp(host) => {
                format!(
                    "{host}:{}",
                    target.get_ports().first().copied().unwrap_or(5432)
                )
            }
            tokio_postgres::config::Host::Unix(_) => panic!("the proxy needs a TCP database URL"),
        };
        let refusing = Arc::clone(&cut);
        tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    return;
                };
                if refusing.load(Ordering::SeqCst) {
                    continue; // dropped: connection closed at once
                }
                let upstream = upstream.clone();
                let mut killed = watch.clone();
                killed.borrow_and_update(); // only cuts from now on end this connection
                tokio::spawn(async move {
                    let Ok(mut server) = tokio::net::TcpStream::connect(&upstream).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = killed.changed() => {}
                    }
                });
            }
        });
        Self { port, cut, kill }
    }

    fn url(&self) -> String {
        let target: tokio_postgres::Config = database_url().parse().unwrap();
        let user = target.get_user().unwrap_or("postgres");
        let db = target.get_dbname().unwrap_or("postgres");
        format!("postgres://{user}@127.0.0.1:{}/{db}", self.port)
    }

    fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        self.kill.send_modify(|n| *n += 1);
    }

    fn restore(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_database_is_a_typed_error_and_nothing_is_lost() {
    let schema = Schema::new().await;
    let proxy = Proxy::start().await;
    let model = ScriptedModel::start().await.unwrap();
    let data = tempfile::tempdir().unwrap();
    let config = common::config(&data).store(StoreConfig::postgres(proxy.url()).schema(&schema.0));
    let bridge = Bridge::start(config).await.unwrap();
    let agent = bridge
        .create_agent(agent_config(&model.base_url()))
        .await
        .unwrap();
    let id = agent.conversation_id().to_owned();
    common::chat_ok(&agent, "saved turn").await;

    // The database goes away (or restarts) mid-conversation.
    proxy.cut();
    let (text, outcome) = collect(agent.chat("unsaved turn").await.unwrap()).await;
    assert_eq!(text, "You said: unsaved turn");
    let err = outcome.unwrap_err();
    let Error::NotSaved {
        outcome,
        conversation_id,
        ..
    } = &err
    else {
        panic!("expected NotSaved, got {err}");
    };
    assert_eq!(conversation_id, &id);
    assert_eq!(outcome.text, "You said: unsaved turn");
    // While it stays away, the agent says so instead of building on unsaved state.
    let err = agent.history().await.unwrap_err();
    assert!(matches!(err, Error::Store { .. }), "{err}");
    assert!(err.is_retryable());

    // Back: the next call saves first, then carries on.
    proxy.restore();
    let history = agent.history().await.unwrap();
    assert!(history.iter().any(|s| s.content.contains("unsaved turn")));
    agent.close().await.unwrap();
    bridge.shutdown().await;

    // Another machine sees every turn.
    let other = tempfile::tempdir().unwrap();
    let bridge = Bridge::start(bridge_config(&other, &schema)).await.unwrap();
    let agent = bridge
        .open_agent(&id, agent_config(&model.base_url()))
        .await
        .unwrap();
    let history = agent.history().await.unwrap();
    for turn in ["saved turn", "unsaved turn"] {
        assert!(history.iter().any(|s| s.content.contains(turn)), "{turn}");
    }
    agent.close().await.unwrap();
    bridge.shutdown().await;
    schema.drop_it().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_corrupt_stored_snapshot_is_refused_and_the_local_copy_kept() {
    let schema = Schema::new().await;
    let model = ScriptedModel::start().await.unwrap();
    let here = tempfile::tempdir().unwrap();
    let bridge = Bridge::start(bridge_config(&here, &schema)).await.unwrap();
    let agent = bridge
        .create_agent(agent_config(&model.base_url()))
        .await
        .unwrap();
    let id = agent.conversation_id().to_owned();
    common::chat_ok(&agent, "version one").await;
    agent.close().await.unwrap();
    let local_db = here.path().join(format!("conversations/{id}.db"));
    let before = std::fs::read(&local_db).unwrap();

    // Another replica writes a newer version, which then gets damaged in the database.
    let elsewhere = tempfile::tempdir().unwrap();
    let other = Bridge::start(bridge_config(&elsewhere, &schema))
        .await
        .unwrap();
    let agent = other
        .open_agent(&id, agent_config(&model.base_url()))
        .await
        .unwrap();
    common::chat_ok(&agent, "version two").await;
    agent.close().await.unwrap();
    other.shutdown().await;
    for (what, damage) in [
        (
            "truncated",
            "UPDATE {s}.snapshots SET compressed = substring(compressed from 1 for 64) WHERE version = (SELECT max(version) FROM {s}.snapshots)",
        ),
        (
            "garbage with a matching checksum",
            "UPDATE {s}.snapshots SET compressed = '\\x1f8b0800deadbeef'::bytea, sha256 = sha256('\\x1f8b0800deadbeef'::bytea) WHERE version = (SELECT max(version) FROM {s}.snapshots)",
        ),
    ] {
        schema.sql(damage).await;
        let err = bridge
            .open_agent(&id, agent_config(&model.base_url()))
            .await
            .unwrap_err();
        assert!(
            matches!(&err, Error::CorruptSnapshot { conversation_id, .. } if conversation_id == &id),
            "{what}: {err}"
        );
        assert!(err.to_string().contains(&id), "{what}: {err}");
        assert_eq!(
            std::fs::read(&local_db).unwrap(),
            before,
            "{what}: the local copy changed"
        );
    }
    // The lease was given back: the conversation is not stuck.
    let rows = schema
        .sql(&format!(
            "SELECT holder FROM {{s}}.conversations WHERE id = '{id}'"
        ))
        .await;
    assert_eq!(first_value(&rows), None);
    bridge.shutdown().await;
    schema.drop_it().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn conversations_are_listed_and_deleted_in_the_store() {
    let schema = Schema::new().await;
    let model = ScriptedModel::start().await.unwrap();
    let data = tempfile::tempdir().unwrap();
    let bridge = Bridge::start(bridge_config(&data, &schema)).await.unwrap();
    let agent = bridge
        .create_agent(agent_config(&model.base_url()))
        .await
        .unwrap();
    let id = agent.conversation_id().to_owned();
    common::chat_ok(&agent, "keep me").await;
    let listed = bridge.list_conversations().await.unwrap();
    let info = listed.iter().find(|c| c.id == id).expect("listed");
    assert_eq!(info.version, Some(1));
    assert!(
        info.holder.is_some() && info.size_bytes.unwrap_or(0) > 0,
        "{info:?}"
    );
    let err = bridge.delete_conversation(&id).await.unwrap_err();
    assert!(matches!(err, Error::ConversationBusy { .. }), "{err}");
    agent.close().await.unwrap();
    bridge.delete_conversation(&id).await.unwrap();
    assert!(bridge.list_conversations().await.unwrap().is_empty());
    let err = bridge
        .open_agent(&id, agent_config(&model.base_url()))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::UnknownConversation { .. }), "{err}");
    bridge.shutdown().await;
    schema.drop_it().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_snapshot_taken_beside_a_turn_on_the_same_shared_harness_restores_elsewhere() {
    let schema = Schema::new().await;
    let model = ScriptedModel::start().await.unwrap();
    let (data_a, data_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = Bridge::start(
        bridge_config(&data_a, &schema)
            .holder("replica-a")
            .lease_wait(Duration::from_millis(300)),
    )
    .await
    .unwrap();
    let url = model.base_url();
    let x = a.create_agent(agent_config(&url)).await.unwrap();
    let y = a.create_agent(agent_config(&url)).await.unwrap();
    assert_eq!(x.harness_pid(), y.harness_pid(), "one shared harness");
    common::chat_ok(&x, "x remembers the word quince").await;

    // y streams slowly on the shared harness while x is snapshotted (hibernated).
    model.push(Reply::slow_text(
        (0..30).map(|i| format!("y{i} ")),
        Duration::from_millis(30),
    ));
    let mut slow = y.chat("talk slowly").await.unwrap();
    common::first_text(&mut slow).await;
    x.disconnect().await.unwrap();
    assert!(x.is_hibernated());
    let id = x.conversation_id().to_owned();

    // Another bridge with its own data directory restores x from the store.
    let b = Bridge::start(bridge_config(&data_b, &schema).holder("replica-b"))
        .await
        .unwrap();
    let moved = b.open_agent(&id, agent_config(&url)).await.unwrap();
    common::chat_ok(&moved, "and the word was?").await;
    let history = moved.history().await.unwrap();
    assert!(
        history.iter().any(|s| s.content.contains("quince")),
        "{history:?}"
    );
    // Never open twice: the first bridge cannot bring x back while b holds it.
    let err = match x.chat("me again").await {
        Err(e) => e,
        Ok(reply) => collect(reply).await.1.unwrap_err(),
    };
    assert!(matches!(err, Error::ConversationBusy { .. }), "{err}");

    let outcome = common::finish_within(slow).await.unwrap();
    assert!(outcome.text.contains("y29"), "{}", outcome.text);
    moved.close().await.unwrap();
    b.shutdown().await;
    a.shutdown().await;
    schema.drop_it().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_quota_hit_backs_the_key_off_in_every_bridge_on_the_store() {
    let schema = Schema::new().await;
    let model = ScriptedModel::start().await.unwrap();
    let (data_a, data_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = Bridge::start(bridge_config(&data_a, &schema).holder("replica-a"))
        .await
        .unwrap();
    let b = Bridge::start(bridge_config(&data_b, &schema).holder("replica-b"))
        .await
        .unwrap();
    // The model gateway's retries off: this is about the backoff the 429 leaves.
    let agent_a = a
        .create_agent(agent_config(&model.base_url()).model_retry(agy_bridge::ModelRetry::none()))
        .await
        .unwrap();
    let agent_b = b
        .create_agent(agent_config(&model.base_url()))
        .await
        .unwrap();
    model.push(Reply::http_error(
        429,
        r#"{"error": {"code": 429, "status": "RESOURCE_EXHAUSTED", "details": [{"retryDelay": "3s"}]}}"#,
    ));
    let err = collect(agent_a.chat("hello").await.unwrap())
        .await
        .1
        .unwrap_err();
    let refused_at = std::time::Instant::now();
    assert!(
        matches!(
            err,
            Error::Agent {
                kind: AgentErrorKind::Quota,
                ..
            }
        ),
        "{err}"
    );
    let rows = schema.sql("SELECT count(*) FROM {s}.quota").await;
    assert_eq!(
        first_value(&rows).as_deref(),
        Some("1"),
        "the hit is shared"
    );

    // B never saw the 429 itself, yet its turn waits out A's backoff before reaching the model.
    let key = ModelConfig::openai_compatible(model.base_url(), "scripted").quota_key();
    assert!(b.quota().state_for_key(&key).remaining().is_zero());
    let asked_before = model.requests().len();
    common::chat_ok(&agent_b, "and me?").await;
    assert_eq!(model.requests().len(), asked_before + 1);
    // A lower bound only: a slow machine can only make it longer.
    assert!(
        refused_at.elapsed() >= Duration::from_millis(2500),
        "B's turn ran {:?} after A was refused for 3 s",
        refused_at.elapsed()
    );
    a.shutdown().await;
    b.shutdown().await;
    schema.drop_it().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_version_1_schema_is_migrated_to_the_current_one() {
    let schema = Schema::new().await;
    let data = tempfile::tempdir().unwrap();
    Bridge::start(bridge_config(&data, &schema))
        .await
        .unwrap()
        .shutdown()
        .await;
    // As the first release of the store left it: no quota table, version 1.
    schema
        .sql("DROP TABLE {s}.quota; UPDATE {s}.schema_version SET version = 1")
        .await;
    Bridge::start(bridge_config(&data, &schema))
        .await
        .unwrap()
        .shutdown()
        .await;
    let version = schema.sql("SELECT version FROM {s}.schema_version").await;
    assert_eq!(first_value(&version).as_deref(), Some("2"));
    let quota = schema.sql("SELECT count(*) FROM {s}.quota").await;
    assert_eq!(first_value(&quota).as_deref(), Some("0"));
    schema.drop_it().await;
}

/// A permutation of `0..n` (a fixed seed: the order is arbitrary, not ascending, and the
/// same in every run).
fn shuffled(n: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    for i in (1..n).rev() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let j = usize::try_from(state % (i as u64 + 1)).unwrap();
        order.swap(i, j);
    }
    order
}

#[tokio::test(flavor = "multi_thread")]
async fn soak_a_thousand_conversations_hibernate_and_resume_with_at_most_16_live_harnesses() {
    const CONVERSATIONS: usize = 1000;
    const LIVE: usize = 16;
    let schema = Schema::new().await;
    let model = ScriptedModel::start().await.unwrap();
    let data = tempfile::tempdir().unwrap();
    let bridge = Bridge::start(bridge_config(&data, &schema).max_live_agents(LIVE))
        .await
        .unwrap();
    let most_live = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let watching = Arc::new(AtomicBool::new(true));
    let watcher = {
        let (bridge, most_live, watching) = (
            bridge.clone(),
            Arc::clone(&most_live),
            Arc::clone(&watching),
        );
        tokio::spawn(async move {
            while watching.load(Ordering::SeqCst) {
                let live = bridge.pool_stats()[0]
                    .live_agents
                    .max(bridge.stats().agents);
                most_live.fetch_max(live, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    let url = model.base_url();
    let started = std::time::Instant::now();
    let agents: Vec<agy_bridge::Agent> =
        futures::StreamExt::collect::<Vec<_>>(futures::StreamExt::buffered(
            futures::stream::iter(0..CONVERSATIONS)
                .map(|_| bridge.create_agent(agent_config(&url))),
            8,
        ))
        .await
        .into_iter()
        .collect::<agy_bridge::Result<_>>()
        .unwrap();
    eprintln!("created {CONVERSATIONS} in {:?}", started.elapsed());
    let stats = &bridge.pool_stats()[0];
    assert_eq!(stats.live_agents + stats.hibernated_agents, CONVERSATIONS);
    assert!(stats.live_agents <= LIVE, "{stats:?}");
    // Each resumed once, in random order, 16 at a time: a turn that names the conversation.
    let started = std::time::Instant::now();
    let resumed = futures::StreamExt::collect::<Vec<_>>(futures::StreamExt::buffer_unordered(
        futures::stream::iter(shuffled(CONVERSATIONS)).map(|i| {
            let agent = &agents[i];
            async move {
                let prompt = format!("conversation {i}");
                let (text, outcome) = collect(agent.chat(prompt.as_str()).await?).await;
                outcome?;
                assert_eq!(text, format!("You said: {prompt}"));
                Ok::<_, Error>(())
            }
        }),
        LIVE,
    ))
    .await;
    eprintln!("resumed {CONVERSATIONS} in {:?}", started.elapsed());
    resumed
        .into_iter()
        .collect::<agy_bridge::Result<Vec<()>>>()
        .unwrap();
    watching.store(false, Ordering::SeqCst);
    watcher.await.unwrap();
    let most = most_live.load(Ordering::SeqCst);
    assert!(most <= LIVE, "{most} harnesses were live at once");
    // Every conversation is in the store with its turn.
    let saved = first_value(
        &schema
            .sql("SELECT count(*) FROM {s}.conversations WHERE version >= 1")
            .await,
    );
    assert_eq!(saved.as_deref(), Some(CONVERSATIONS.to_string().as_str()));
    bridge.shutdown().await;
    schema.drop_it().await;
}
