//! Procedural macros for `agy-bridge`.
//!
//! The `#[llm_tool]` attribute lands here with the tools work; the crate exists now so the
//! workspace layout is stable for downstream users.
