//! The demo image-edit service: a small web service that behaves like a Gradio image-editing
//! app (for example Qwen-Image-Edit served by `app_gradio.py`), for deploying under warden.
//!
//! It loads its weights from safetensors files laid out like the real models, applies an edit
//! that those weights and the prompt define, writes uploads to the temp directory and logs every
//! prompt, as real apps do. It is what warden's example deployment runs.

pub mod cli;
pub mod edit;
pub mod generate;
pub mod logging;
pub mod model;
pub mod server;
