//! Prompt-side budgets (`strategies.md` §5.7): the same strategy with another system
//! prompt for its chains of thought — concise, Chain of Draft, a token budget the model
//! estimates first (TALE-EP), or a template of the user's. [`Styled`] wraps any strategy,
//! so every strategy has them.

use crate::strategy::{invalid, Cx, Needs, Problem, SearchError, Solution, Strategy};
use crate::MATH_SYSTEM_PROMPT;
use ponder_engine::{GenSpec, SamplingParams};
use serde::{Deserialize, Serialize};

/// How chains of thought are asked for.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PromptStyle {
    /// Step by step, the answer boxed: the run's own system prompt (the default).
    #[default]
    Cot,
    /// Concise CoT (arXiv 2401.05618): the same, and "Be concise."
    Concise,
    /// Chain of Draft (arXiv 2502.18600): a minimal draft per step, at most five words.
    ChainOfDraft,
    /// TALE-EP (arXiv 2412.18547): the model first estimates a token budget for the
    /// problem, which is then written into the prompt.
    TokenBudget,
    /// A system prompt of the user's (read from a file); `{budget}` in it is not special.
    Custom {
        /// Where it was read from (names the style).
        file: String,
        /// The system prompt.
        text: String,
    },
}

/// The known styles' names, for errors and help.
pub const STYLES: &str = "cot, concise, chain-of-draft, token-budget, or a template file";

/// The budget TALE-EP's prompt states when the model's estimate holds no number.
pub const FALLBACK_BUDGET: usize = 150;

/// Budgets below this are raised to it: a chain of thought needs some room.
const MIN_BUDGET: usize = 10;

/// Tokens the budget estimate may use (it is asked for a number).
const ESTIMATE_TOKENS: usize = 24;

/// TALE-EP's estimation prompt (its zero-shot form).
pub const ESTIMATE_PROMPT: &str = "Task: Analyze the given question and estimate the minimum \
    number of tokens required to generate a complete and accurate response. Please give the \
    response by strictly following this format: [[budget]], for example, Budget: [[12]].";

impl PromptStyle {
    /// The style by name, or a template file: an unknown name that is no readable file
    /// is refused, listing the known ones.
    pub fn parse(s: &str) -> Result<Self, String> {
        Ok(match s {
            "cot" => Self::Cot,
            "concise" => Self::Concise,
            "chain-of-draft" => Self::ChainOfDraft,
            "token-budget" => Self::TokenBudget,
            path => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    format!("unknown prompt style {path:?} ({STYLES}; as a file: {e})")
                })?;
                if text.trim().is_empty() {
                    return Err(format!("the prompt template {path} is empty"));
                }
                Self::Custom {
                    file: path.to_string(),
                    text: text.trim().to_string(),
                }
            }
        })
    }

    /// The word strategy names end in (none for `cot`).
    pub fn label(&self) -> Option<String> {
        match self {
            Self::Cot => None,
            Self::Concise => Some("concise".into()),
            Self::ChainOfDraft => Some("chain-of-draft".into()),
            Self::TokenBudget => Some("token-budget".into()),
            Self::Custom { file, .. } => {
                let stem = std::path::Path::new(file)
                    .file_stem()
                    .map_or_else(|| "custom".into(), |s| s.to_string_lossy().into_owned());
                Some(format!("prompt-{stem}"))
            }
        }
    }

    /// The system prompt of this style (`budget`: TALE-EP's, when known).
    pub fn system(&self, run: Option<&str>, budget: Option<usize>) -> Option<String> {
        let base = run.unwrap_or(MATH_SYSTEM_PROMPT);
        match self {
            Self::Cot => run.map(str::to_string),
            Self::Concise => Some(format!("{base} Be concise.")),
            Self::ChainOfDraft => Some(
                "Think step by step, but only keep a minimum draft for each thinking step, \
                 with at most five words. Put your final answer within \\boxed{}."
                    .into(),
            ),
            Self::TokenBudget => Some(format!(
                "{base} Let's think step by step and use less than {} tokens.",
                budget.unwrap_or(FALLBACK_BUDGET)
            )),
            Self::Custom { text, .. } => Some(text.clone()),
        }
    }
}

/// The budget TALE-EP's prompt stated for a problem.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PromptBudget {
    /// Tokens.
    pub tokens: usize,
    /// False when the estimate held no number and [`FALLBACK_BUDGET`] was used.
    pub estimated: bool,
}

/// The number a budget estimate gives: inside `[[…]]` if there is one, else the first
/// whole number; None when it has none.
pub fn parse_budget(text: &str) -> Option<usize> {
    let inner = text
        .split_once("[[")
        .and_then(|(_, rest)| rest.split_once("]]"))
        .map(|(n, _)| n);
    let digits = |s: &str| -> Option<usize> {
        let start = s.find(|c: char| c.is_ascii_digit())?;
        let run: String = s[start..]
            .chars()
            .take_while(|c| c.is_ascii_digit())
            .collect();
        run.parse().ok()
    };
    inner.and_then(digits).or_else(|| digits(text))
}

/// A strategy whose chains of thought are asked for in another style.
pub struct Styled {
    /// The strategy.
    pub inner: Box<dyn Strategy>,
    /// How its chains of thought are asked for.
    pub style: PromptStyle,
}

impl Styled {
    /// `inner` in `style`; `cot` leaves it as it is. Program-only strategies (`pot`)
    /// write no chain of thought and are refused.
    pub fn wrap(
        inner: Box<dyn Strategy>,
        style: PromptStyle,
    ) -> Result<Box<dyn Strategy>, SearchError> {
        if style == PromptStyle::Cot {
            return Ok(inner);
        }
        if !inner.writes_chains_of_thought() {
            return Err(invalid(
                "prompt_style",
                format!(
                    "{} writes programs with its own prompt: a prompt style shapes chains of thought",
                    inner.name()
                ),
            ));
        }
        Ok(Box::new(Styled { inner, style }))
    }

    /// TALE-EP's estimate for one problem: the budget and what asking cost.
    fn estimate(
        &self,
        cx: &Cx,
        problem: &Problem,
    ) -> Result<(PromptBudget, ponder_engine::Stats), SearchError> {
        let session = cx.session(problem);
        let prompt = cx.prompt_with(&cx.engine, Some(ESTIMATE_PROMPT), problem)?;
        let mut b = session.prefill_prompt(&prompt)?;
        b.extend(&GenSpec::new(SamplingParams::greedy(), ESTIMATE_TOKENS))?;
        let text = b.text();
        drop(b);
        let most = self.inner.needs().max_tokens.max(MIN_BUDGET);
        let budget = match parse_budget(&text) {
            Some(n) => PromptBudget {
                tokens: n.clamp(MIN_BUDGET, most),
                estimated: true,
            },
            None => PromptBudget {
                tokens: FALLBACK_BUDGET,
                estimated: false,
            },
        };
        Ok((budget, session.stats()))
    }
}

impl Strategy for Styled {
    fn name(&self) -> String {
        match self.style.label() {
            Some(l) => format!("{}-{l}", self.inner.name()),
            None => self.inner.name(),
        }
    }
    fn needs(&self) -> Needs {
        self.inner.needs()
    }
    fn settings(&self) -> serde_json::Value {
        let mut s = self.inner.settings();
        if let Some(m) = s.as_object_mut() {
            m.insert(
                "prompt_style".into(),
                serde_json::to_value(&self.style).unwrap_or_default(),
            );
        }
        s
    }
    fn solve(&self, cx: &Cx, problem: &Problem) -> Result<Solution, SearchError> {
        let mut styled = cx.clone();
        let (budget, spent) = match self.style {
            PromptStyle::TokenBudget => {
                let (b, s) = self.estimate(cx, problem)?;
                (Some(b), Some(s))
            }
            _ => (None, None),
        };
        styled.system = self
            .style
            .system(cx.system.as_deref(), budget.map(|b| b.tokens));
        let mut sol = self.inner.solve(&styled, problem)?;
        sol.strategy = self.name();
        if let Some(s) = spent {
            sol.stats = sol.stats.merge(&s);
        }
        sol.prompt_budget = budget;
        Ok(sol)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::build;
    use ponder_engine::mock::{ChoiceModel, MockConfig};
    use ponder_engine::Engine;
    use serde_json::json;
    use std::sync::Arc;

    #[test]
    fn budgets_are_read_from_the_brackets_or_the_first_number() {
        assert_eq!(parse_budget("Budget: [[42]]"), Some(42));
        assert_eq!(parse_budget("about 3 steps, [[ 80 ]] tokens"), Some(80));
        assert_eq!(parse_budget("I need 60 tokens"), Some(60));
        assert_eq!(parse_budget("[[many]] then 7"), Some(7));
        assert_eq!(parse_budget("no idea"), None);
    }

    #[test]
    fn styles_parse_by_name_or_file_and_unknown_ones_are_listed() {
        assert_eq!(PromptStyle::parse("concise"), Ok(PromptStyle::Concise));
        let e = PromptStyle::parse("terse").unwrap_err();
        assert!(e.starts_with("unknown prompt style \"terse\" (cot, concise, chain-of-draft, token-budget, or a template file"), "{e}");
        let f = std::env::temp_dir().join(format!("ponder-style-{}.txt", std::process::id()));
        std::fs::write(&f, "Answer in one line, boxed.\n").unwrap();
        let s = PromptStyle::parse(f.to_str().unwrap()).unwrap();
        assert_eq!(
            s.system(None, None).as_deref(),
            Some("Answer in one line, boxed.")
        );
        assert!(s.label().unwrap().starts_with("prompt-ponder-style-"));
        std::fs::write(&f, "  \n").unwrap();
        assert!(PromptStyle::parse(f.to_str().unwrap())
            .unwrap_err()
            .contains("is empty"));
        let _ = std::fs::remove_file(&f);
    }

    /// The mock answers "Budget: [[40]]" to anything: the estimate is read, the
    /// strategy's prompt states it, and both generations are counted.
    #[test]
    fn token_budget_estimates_first_and_counts_what_it_cost() {
        let model = ChoiceModel::new(&[("Budget: [[40]]", 1.0)]);
        let engine = Engine::mock(MockConfig {
            model: Arc::new(model),
            ..Default::default()
        })
        .unwrap();
        let cx = Cx::new(engine);
        let greedy = build("greedy", &json!({"max_tokens": 32})).unwrap();
        let plain = greedy.solve(&cx, &Problem::new(0, "q")).unwrap();
        let styled = Styled::wrap(
            build("greedy", &json!({"max_tokens": 32})).unwrap(),
            PromptStyle::TokenBudget,
        )
        .unwrap();
        assert_eq!(styled.name(), "greedy-token-budget");
        assert_eq!(styled.settings()["prompt_style"], "token-budget");
        let sol = styled.solve(&cx, &Problem::new(0, "q")).unwrap();
        assert_eq!(sol.strategy, "greedy-token-budget");
        // Clamped to the strategy's 32 tokens.
        assert_eq!(
            sol.prompt_budget,
            Some(PromptBudget {
                tokens: 32,
                estimated: true
            })
        );
        // The estimate's own tokens are counted on top of the answer's.
        assert!(sol.stats.generated_tokens > plain.stats.generated_tokens);
        assert!(sol.stats.prompt_tokens > plain.stats.prompt_tokens);
    }

    #[test]
    fn an_estimate_without_a_number_falls_back_and_says_so() {
        let model = ChoiceModel::new(&[("hard to say", 1.0)]);
        let engine = Engine::mock(MockConfig {
            model: Arc::new(model),
            ..Default::default()
        })
        .unwrap();
        let cx = Cx::new(engine);
        let styled = Styled::wrap(
            build("greedy", &json!({"max_tokens": 32})).unwrap(),
            PromptStyle::TokenBudget,
        )
        .unwrap();
        let sol = styled.solve(&cx, &Problem::new(0, "q")).unwrap();
        assert_eq!(
            sol.prompt_budget,
            Some(PromptBudget {
                tokens: FALLBACK_BUDGET,
                estimated: false
            })
        );
    }

    /// Records the system prompt it was asked to solve under.
    struct Spy(Arc<std::sync::Mutex<Option<String>>>);
    impl Strategy for Spy {
        fn name(&self) -> String {
            "spy".into()
        }
        fn needs(&self) -> Needs {
            Needs {
                max_tokens: 64,
                ..Needs::default()
            }
        }
        fn solve(&self, cx: &Cx, _: &Problem) -> Result<Solution, SearchError> {
            *self.0.lock().unwrap() = cx.system.clone();
            Ok(Solution::new(
                "spy".into(),
                Vec::new(),
                None,
                Default::default(),
            ))
        }
    }

    #[test]
    fn the_inner_strategy_solves_under_the_styled_prompt() {
        let model = ChoiceModel::new(&[("[[55]]", 1.0)]);
        let engine = Engine::mock(MockConfig {
            model: Arc::new(model),
            ..Default::default()
        })
        .unwrap();
        let cx = Cx::new(engine);
        for (style, want) in [
            (
                PromptStyle::Concise,
                format!("{MATH_SYSTEM_PROMPT} Be concise."),
            ),
            (
                PromptStyle::TokenBudget,
                format!(
                    "{MATH_SYSTEM_PROMPT} Let's think step by step and use less than 55 tokens."
                ),
            ),
        ] {
            let seen = Arc::new(std::sync::Mutex::new(None));
            let s = Styled::wrap(Box::new(Spy(seen.clone())), style).unwrap();
            s.solve(&cx, &Problem::new(0, "q")).unwrap();
            assert_eq!(seen.lock().unwrap().as_deref(), Some(want.as_str()));
        }
    }

    #[test]
    fn the_style_changes_the_system_prompt_and_programs_are_refused() {
        assert_eq!(PromptStyle::Cot.system(None, None), None);
        assert_eq!(
            PromptStyle::Concise.system(None, None).unwrap(),
            format!("{MATH_SYSTEM_PROMPT} Be concise.")
        );
        assert!(PromptStyle::TokenBudget
            .system(Some("Solve it."), Some(70))
            .unwrap()
            .ends_with("Solve it. Let's think step by step and use less than 70 tokens."));
        let pot = build("pot", &json!({})).unwrap();
        let e = Styled::wrap(pot, PromptStyle::Concise)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("writes programs with its own prompt"), "{e}");
        let mixed = build("mixed", &json!({})).unwrap();
        assert!(Styled::wrap(mixed, PromptStyle::Concise).is_ok());
        let bon = build("best-of-n", &json!({"n": 4})).unwrap();
        assert_eq!(
            Styled::wrap(bon, PromptStyle::Cot).unwrap().name(),
            "best-of-4-majority"
        );
    }
}
