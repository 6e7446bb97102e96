//! Hooks see every step of a turn; policies decide which tools may run. The `ask_user` handler
//! asks on the terminal (offline, or without a terminal, it approves and says so).
//!
//! `cargo run --example hooks_and_policies`

#[path = "common/mod.rs"]
mod common;

use std::io::{BufRead, IsTerminal, Write};

use agy_bridge::{
    AgentConfig, Bridge, BridgeConfig, Hooks, PolicyRule, hooks::ToolDecision,
    policies::ConfirmRequest, testing::Reply, tools::FnTool,
};
use serde_json::json;

async fn ask_on_terminal(request: ConfirmRequest) -> bool {
    if !std::io::stdin().is_terminal() {
        println!(
            "  [policy] {} {} — no terminal, approving",
            request.tool, request.args
        );
        return true;
    }
    tokio::task::spawn_blocking(move || {
        print!("  [policy] allow {} {}? [y/N] ", request.tool, request.args);
        std::io::stdout().flush().ok();
        let mut answer = String::new();
        std::io::stdin().lock().read_line(&mut answer).ok();
        answer.trim().eq_ignore_ascii_case("y")
    })
    .await
    .unwrap_or(false)
}

#[tokio::main]
async fn main() -> agy_bridge::Result<()> {
    let (model, _offline) = common::model(vec![
        Reply::tool_call("delete_file", json!({"path": "/etc/passwd"})),
        Reply::text("I was not allowed to delete that file."),
        Reply::tool_call("send_email", json!({"to": "team@example.com"})),
        Reply::text("The email is on its way."),
    ])
    .await;
    let tool = |name: &'static str| {
        FnTool::new(
            name,
            format!("The {name} tool."),
            json!({"type": "object", "properties": {}}),
            move |args, _| async move { Ok(json!(format!("{name} done with {args}"))) },
        )
    };
    let hooks = Hooks::new()
        .pre_tool_call_decide(|call| async move {
            println!("  [hook] model wants {} {}", call.tool, call.args);
            if call.args["path"]
                .as_str()
                .is_some_and(|p| p.starts_with("/etc"))
            {
                return ToolDecision::Deny("system files are off limits".into());
            }
            ToolDecision::Allow
        })
        .post_turn(|turn| async move { println!("  [hook] turn finished: {:?}", turn.response) });
    let bridge = Bridge::start(BridgeConfig::default()).await?;
    let agent = bridge
        .create_agent(
            AgentConfig::new(model)
                .tool(tool("delete_file"))
                .tool(tool("send_email"))
                .hooks(hooks)
                .policy(PolicyRule::ask_user_with_reason(
                    "send_email",
                    "emails leave the building",
                    ask_on_terminal,
                ))
                .policy(PolicyRule::allow_all()),
        )
        .await?;
    for prompt in ["Delete /etc/passwd.", "Email the team."] {
        println!("> {prompt}");
        let outcome = agent.chat(prompt).await?.finish().await?;
        println!("{}", outcome.text);
    }
    agent.close().await?;
    bridge.shutdown().await;
    Ok(())
}
