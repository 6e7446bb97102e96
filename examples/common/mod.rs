//! Shared by the examples: Gemini when `GEMINI_API_KEY` is set, else an offline scripted model.

use agy_bridge::{
    ModelConfig,
    testing::{Reply, ScriptedModel},
};

/// The model to use, and the scripted server when offline (keep it alive while chatting).
pub(crate) async fn model(offline_script: Vec<Reply>) -> (ModelConfig, Option<ScriptedModel>) {
    if std::env::var("GEMINI_API_KEY").is_ok() {
        eprintln!("(using Gemini from GEMINI_API_KEY)");
        return (ModelConfig::gemini_from_env().expect("key is set"), None);
    }
    eprintln!("(offline: a scripted model plays the model; set GEMINI_API_KEY for Gemini)");
    let server = ScriptedModel::start().await.expect("scripted model starts");
    for reply in offline_script {
        server.push(reply);
    }
    (
        ModelConfig::openai_compatible(server.base_url(), "scripted"),
        Some(server),
    )
}
