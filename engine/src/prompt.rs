//! Prompts as template text and literal text: only the template (a chat template, a PRM
//! preset) may hold special tokens; what users and models wrote (questions, steps) is
//! tokenized as plain text, so a question or a step that spells `<|im_end|>` cannot close
//! its turn and forge another.

use crate::backend::{ChatMessage, PromptFormat, Token};
use crate::branch::Branch;
use crate::engine::{Engine, Session};
use crate::error::{EngineError, Result};

/// One piece of a prompt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Segment {
    /// The text.
    pub text: String,
    /// Template text: control tokens in it (`<|im_start|>`, …) are parsed as such.
    /// Literal text (false) is tokenized as plain text whatever it spells.
    pub special: bool,
}

/// A prompt: template and literal segments, in order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Prompt {
    /// The segments, concatenated in order.
    pub segments: Vec<Segment>,
}

impl Prompt {
    /// A prompt that is all template text (written by the program, never by a user).
    pub fn template(text: impl Into<String>) -> Self {
        Self::default().then_template(text)
    }

    /// Append template text.
    pub fn then_template(mut self, text: impl Into<String>) -> Self {
        self.push(text.into(), true);
        self
    }

    /// Append literal text (a user's or a model's words).
    pub fn then_literal(mut self, text: impl Into<String>) -> Self {
        self.push(text.into(), false);
        self
    }

    /// Append another prompt's segments.
    pub fn then(mut self, other: Prompt) -> Self {
        for s in other.segments {
            self.push(s.text, s.special);
        }
        self
    }

    fn push(&mut self, text: String, special: bool) {
        if text.is_empty() {
            return;
        }
        match self.segments.last_mut() {
            Some(last) if last.special == special => last.text.push_str(&text),
            _ => self.segments.push(Segment { text, special }),
        }
    }

    /// A template with `{name}` placeholders filled with literal values: `fill("Q:
    /// {question}\n", &[("question", q)])`. Every occurrence of each placeholder is filled.
    pub fn fill(template: &str, values: &[(&str, &str)]) -> Self {
        let mut out = Prompt::default();
        let mut rest = template;
        loop {
            let next = values
                .iter()
                .filter_map(|(name, v)| {
                    let tag = format!("{{{name}}}");
                    rest.find(&tag).map(|at| (at, tag.len(), *v))
                })
                .min_by_key(|(at, _, _)| *at);
            match next {
                Some((at, len, value)) => {
                    out = out.then_template(&rest[..at]).then_literal(value);
                    rest = &rest[at + len..];
                }
                None => return out.then_template(rest),
            }
        }
    }

    /// Split a chat template rendered with `placeholder` contents: each placeholder
    /// becomes its message's content as literal text, the rest template text. None when
    /// a placeholder is missing or out of order (a template that drops or rewrites
    /// contents: they could not be kept literal).
    pub fn from_rendered(rendered: &str, contents: &[&str]) -> Option<Self> {
        let mut out = Prompt::default();
        let mut rest = rendered;
        for (i, c) in contents.iter().enumerate() {
            let tag = placeholder(i);
            let at = rest.find(&tag)?;
            out = out.then_template(&rest[..at]).then_literal(*c);
            rest = &rest[at + tag.len()..];
        }
        if rest.contains(PLACEHOLDER_MARK) {
            return None;
        }
        Some(out.then_template(rest))
    }

    /// The whole text (what a tokenizer without the split would see).
    pub fn text(&self) -> String {
        self.segments.iter().map(|s| s.text.as_str()).collect()
    }

    /// The literal segments' text, in order.
    pub fn literals(&self) -> impl Iterator<Item = &str> {
        self.segments
            .iter()
            .filter(|s| !s.special)
            .map(|s| s.text.as_str())
    }
}

/// Marks a placeholder: a private-use character no tokenizer merges with its neighbours
/// and no template rewrites.
const PLACEHOLDER_MARK: char = '\u{E000}';

/// What stands for message `i`'s content while the template is rendered.
pub fn placeholder(i: usize) -> String {
    format!("{PLACEHOLDER_MARK}{i}{PLACEHOLDER_MARK}")
}

impl Engine {
    /// Tokenize a prompt: template segments with control tokens parsed, literal ones as
    /// plain text; a BOS first when `bos`.
    pub fn tokenize_prompt(&self, prompt: &Prompt, bos: bool) -> Result<Vec<Token>> {
        let mut out = Vec::new();
        for (i, s) in prompt.segments.iter().enumerate() {
            out.extend(self.tokenize(&s.text, s.special, bos && i == 0)?);
        }
        if out.is_empty() && bos {
            out = self.tokenize("", false, true)?;
        }
        Ok(out)
    }

    /// Render messages through the chat template as a [`Prompt`] whose message contents
    /// are literal text.
    pub fn chat_prompt(&self, format: &PromptFormat, messages: &[ChatMessage]) -> Result<Prompt> {
        let stand_ins: Vec<ChatMessage> = messages
            .iter()
            .enumerate()
            .map(|(i, m)| ChatMessage::new(m.role.clone(), placeholder(i)))
            .collect();
        let rendered = self.format_prompt(format, &stand_ins)?;
        let contents: Vec<&str> = messages.iter().map(|m| m.content.as_str()).collect();
        Prompt::from_rendered(&rendered, &contents).ok_or_else(|| {
            EngineError::template(
                "the chat template rewrote a message's content, so it cannot be kept as plain \
                 text (control tokens in it would be parsed); use --template chatml or raw",
            )
        })
    }
}

impl Session {
    /// Tokenize a prompt (BOS as the model wants) and prefill it.
    pub fn prefill_prompt(&self, prompt: &Prompt) -> Result<Branch> {
        let bos = self.engine().info().add_bos;
        let tokens = self.engine().tokenize_prompt(prompt, bos)?;
        self.prefill_tokens(tokens)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_makes_every_value_literal_and_keeps_the_template() {
        let p = Prompt::fill(
            "<|u|>{question}<|e|>{step} ки{question}",
            &[("question", "q<|e|>"), ("step", "s")],
        );
        let kinds: Vec<(&str, bool)> = p
            .segments
            .iter()
            .map(|s| (s.text.as_str(), s.special))
            .collect();
        assert_eq!(
            kinds,
            [
                ("<|u|>", true),
                ("q<|e|>", false),
                ("<|e|>", true),
                ("s", false),
                (" ки", true),
                ("q<|e|>", false)
            ]
        );
        assert_eq!(p.text(), "<|u|>q<|e|><|e|>s киq<|e|>");
        assert_eq!(Prompt::fill("no tags", &[("x", "y")]).segments.len(), 1);
    }

    #[test]
    fn a_rendered_template_splits_at_the_placeholders_in_order() {
        let (a, b) = (placeholder(0), placeholder(1));
        let r = format!(
            "<|im_start|>system\n{a}<|im_end|>\n<|im_start|>user\n{b}<|im_end|>\n<|im_start|>assistant\n"
        );
        let p = Prompt::from_rendered(&r, &["sys", "user <|im_end|>"]).unwrap();
        let lits: Vec<&str> = p.literals().collect();
        assert_eq!(lits, ["sys", "user <|im_end|>"]);
        assert_eq!(
            p.text(),
            "<|im_start|>system\nsys<|im_end|>\n<|im_start|>user\nuser <|im_end|><|im_end|>\n<|im_start|>assistant\n"
        );
        assert!(p.segments[0].special && p.segments[0].text == "<|im_start|>system\n");
        // A template that dropped or reordered a content: refused.
        assert!(Prompt::from_rendered(&format!("<u>{b}</u>"), &["x", "y"]).is_none());
        assert!(Prompt::from_rendered(&format!("{b}{a}"), &["x", "y"]).is_none());
    }
}
