//! Chat templates: the Jinja source a model ships (`tokenizer.chat_template` in GGUF,
//! `chat_template` in `tokenizer_config.json`) rendered with `minijinja` the way
//! `transformers`' `apply_chat_template` renders it: blocks trimmed (`trim_blocks`,
//! `lstrip_blocks`), `messages`, `add_generation_prompt`, `bos_token` and `eos_token` in the
//! context, and a `raise_exception(msg)` function whose message becomes the error.

use crate::error::{op_err, Result};
use minijinja::{Environment, Error as JinjaError, ErrorKind};
use serde::Serialize;

/// One turn of a conversation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ChatMessage {
    /// "system", "user" or "assistant".
    pub role: String,
    /// The text of the turn.
    pub content: String,
}

impl ChatMessage {
    /// A message of `role` with `content`.
    pub fn new(role: &str, content: &str) -> Self {
        ChatMessage {
            role: role.into(),
            content: content.into(),
        }
    }
}

/// A compiled chat template.
///
/// ```
/// use fukai::text::{ChatMessage, ChatTemplate};
/// let t = ChatTemplate::new(
///     "{% for m in messages %}<|{{ m.role }}|>{{ m.content }}\n{% endfor %}\
///      {% if add_generation_prompt %}<|assistant|>{% endif %}",
///     "<s>",
///     "</s>",
/// )?;
/// let text = t.render(&[ChatMessage::new("user", "Hi")], true)?;
/// assert_eq!(text, "<|user|>Hi\n<|assistant|>");
/// # Ok::<(), fukai::Error>(())
/// ```
pub struct ChatTemplate {
    env: Environment<'static>,
    // Compiled again by each render (templates are short): an owned compiled template would
    // need minijinja's loader feature.
    source: String,
    bos: String,
    eos: String,
}

fn template_err(e: JinjaError) -> crate::Error {
    let mut msg = e.to_string();
    let mut src = std::error::Error::source(&e);
    while let Some(s) = src {
        msg.push_str(&format!(": {s}"));
        src = s.source();
    }
    op_err("chat template", msg)
}

impl ChatTemplate {
    /// Compiles `source`; a syntax error is reported here, with its line.
    pub fn new(source: &str, bos_token: &str, eos_token: &str) -> Result<Self> {
        let mut env = Environment::new();
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.add_function(
            "raise_exception",
            |msg: String| -> std::result::Result<String, JinjaError> {
                Err(JinjaError::new(ErrorKind::InvalidOperation, msg))
            },
        );
        env.template_from_str(source).map_err(template_err)?;
        Ok(ChatTemplate {
            env,
            source: source.into(),
            bos: bos_token.into(),
            eos: eos_token.into(),
        })
    }

    /// The prompt text for `messages`, ending with the assistant's header when
    /// `add_generation_prompt` is set.
    pub fn render(&self, messages: &[ChatMessage], add_generation_prompt: bool) -> Result<String> {
        self.env
            .render_str(
                &self.source,
                minijinja::context! {
                messages => messages,
                add_generation_prompt => add_generation_prompt,
                bos_token => &self.bos,
                eos_token => &self.eos,
                },
            )
            .map_err(template_err)
    }
}
