//! Every strategy by name: its settings type, its defaults, its documentation and how it
//! is built. The one place that knows the catalogue; the CLI, `ponder eval`, the server
//! and `ponder strategies` all read it, so none of them can drift from it.
//!
//! A strategy's settings are one serde struct (the strategy value itself): its defaults
//! are its `Default`, its documentation its doc comments (read through `schemars`).
//! Settings reach it as layers of JSON over the defaults — a config file, the common
//! options ([`Common`]), then `key=value` pairs — validated once, here, with errors that
//! name the strategy, the key and what is allowed.
//!
//! Adding a strategy: write its file (a settings struct that implements [`Strategy`] and
//! [`Settings`]) and add one line to [`REGISTRY`].

use crate::strategy::{SearchError, Strategy};
use crate::{
    BeamSearch, BestOfN, CertaintyVote, Dpts, Dvts, EarlyExit, FastMcts, Greedy, LengthVote, Mcts,
    Rsd, SpecRejection, StBoN,
};
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{Map, Value};

/// New tokens per sample unless a strategy or the user says otherwise (ours, measured:
/// Qwen2.5-Coder-0.5B's MultiArith chains of thought end within ~190 tokens; 320 leaves
/// room without paying for runaway samples).
pub const DEFAULT_MAX_TOKENS: usize = 320;

/// What a settings struct gives the registry besides serde: which setting the common
/// `--n` sets, and the checks that need no model.
pub trait Settings:
    Strategy + Serialize + DeserializeOwned + JsonSchema + Default + Clone + 'static
{
    /// The setting `--n` sets: the most candidates or paths this strategy explores
    /// (None: it has no such number, e.g. greedy).
    const N: Option<&'static str>;
    /// Check the settings before any model is loaded.
    fn check(&self) -> Result<(), SearchError>;
}

/// One registered strategy.
pub struct Entry {
    /// The name users type (`--strategy`, `--strategies`, the server's `model`).
    pub name: &'static str,
    /// The setting `--n` sets, if any.
    pub n_key: Option<&'static str>,
    defaults: fn() -> Value,
    schema: fn() -> Value,
    build: fn(Value) -> Result<Box<dyn Strategy>, BuildError>,
}

/// Why settings could not become a strategy (before the strategy's name is attached).
enum BuildError {
    Shape(String),
    Invalid(SearchError),
}

fn entry<S: Settings>(name: &'static str) -> Entry {
    Entry {
        name,
        n_key: S::N,
        defaults: || json(&S::default()),
        schema: || {
            let settings = schemars::generate::SchemaSettings::draft2020_12().with(|s| {
                s.inline_subschemas = true;
            });
            settings
                .into_generator()
                .into_root_schema_for::<S>()
                .to_value()
        },
        build: |v| {
            let s: S = serde_path_to_error::deserialize(v).map_err(|e| {
                let path = e.path().to_string();
                let inner = e.into_inner().to_string();
                BuildError::Shape(if path == "." {
                    inner
                } else {
                    format!("setting `{path}`: {inner}")
                })
            })?;
            s.check().map_err(BuildError::Invalid)?;
            Ok(Box::new(s))
        },
    }
}

/// The catalogue, in the order `ponder strategies` lists it.
pub static REGISTRY: std::sync::LazyLock<Vec<Entry>> = std::sync::LazyLock::new(|| {
    vec![
        entry::<Greedy>("greedy"),
        entry::<BestOfN>("best-of-n"),
        entry::<LengthVote>("length-vote"),
        entry::<CertaintyVote>("certainty-vote"),
        entry::<crate::voting::adaptive::AdaptiveConsistency>("adaptive-consistency"),
        entry::<crate::Pot>("pot"),
        entry::<crate::Mixed>("mixed"),
        entry::<crate::Cascade>("cascade"),
        entry::<SpecRejection>("spec-rejection"),
        entry::<StBoN>("st-bon"),
        entry::<EarlyExit>("early-exit"),
        entry::<BeamSearch>("beam"),
        entry::<Dvts>("dvts"),
        entry::<Mcts>("mcts"),
        entry::<FastMcts>("fast-mcts"),
        entry::<Dpts>("dpts"),
        entry::<Rsd>("rsd"),
    ]
});

/// Every registered name, in catalogue order.
pub fn names() -> Vec<&'static str> {
    REGISTRY.iter().map(|e| e.name).collect()
}

/// The entry of a name, or an error listing the known names.
pub fn lookup(name: &str) -> Result<&'static Entry, SearchError> {
    REGISTRY
        .iter()
        .find(|e| e.name == name)
        .ok_or_else(|| SearchError::UnknownStrategy(name.to_string()))
}

/// Build a strategy by name from a (partial) settings object: `build("mcts",
/// &json!({"iterations": 16}))`. Missing keys keep their defaults.
pub fn build(name: &str, settings: &Value) -> Result<Box<dyn Strategy>, SearchError> {
    lookup(name)?.build(settings)
}

/// The common options, each `None` unless the user set it. A strategy that has the
/// setting takes it; one that does not is left alone (and keeps its own default for the
/// ones it has but the user did not set).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Common {
    /// The most candidates/paths explored (the strategy's [`Settings::N`]).
    pub n: Option<usize>,
    /// `sampling.temperature`.
    pub temperature: Option<f32>,
    /// `sampling.top_p`.
    pub top_p: Option<f32>,
    /// `sampling.top_k`.
    pub top_k: Option<usize>,
    /// `sampling.min_p`.
    pub min_p: Option<f32>,
    /// `max_tokens`.
    pub max_tokens: Option<usize>,
    /// `vote`.
    pub vote: Option<crate::Vote>,
    /// `steps.unit`.
    pub step_unit: Option<crate::StepUnit>,
    /// `steps.max_step_tokens`.
    pub max_step_tokens: Option<usize>,
}

impl Common {
    /// (CLI flag, settings path, value) of each option that is set; `n` maps to `n_key`
    /// (an empty path when the strategy has no N).
    fn pairs(&self, n_key: Option<&str>) -> Vec<(&'static str, String, Value)> {
        let opts: [(&'static str, &str, Option<Value>); 9] = [
            ("--n", n_key.unwrap_or(""), self.n.map(|v| json(&v))),
            (
                "--temperature",
                "sampling.temperature",
                self.temperature.map(|v| json(&v)),
            ),
            ("--top-p", "sampling.top_p", self.top_p.map(|v| json(&v))),
            ("--top-k", "sampling.top_k", self.top_k.map(|v| json(&v))),
            ("--min-p", "sampling.min_p", self.min_p.map(|v| json(&v))),
            (
                "--max-tokens",
                "max_tokens",
                self.max_tokens.map(|v| json(&v)),
            ),
            ("--vote", "vote", self.vote.map(|v| json(&v))),
            (
                "--step-delimiter/--step-tokens",
                "steps.unit",
                self.step_unit.as_ref().map(json),
            ),
            (
                "--max-step-tokens",
                "steps.max_step_tokens",
                self.max_step_tokens.map(|v| json(&v)),
            ),
        ];
        opts.into_iter()
            .filter_map(|(flag, path, v)| Some((flag, path.to_string(), v?)))
            .collect()
    }
}

/// A value as JSON, numbers as they print (an f32 0.8 stays 0.8, not 0.800000011920929).
pub(crate) fn json(v: &impl Serialize) -> Value {
    serde_json::to_string(v)
        .and_then(|t| serde_json::from_str(&t))
        .expect("settings serialise to JSON")
}

/// Settings for one or more strategies, as layers over their defaults.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    /// Applied to every strategy that has the key (a config file's top level).
    pub shared: Vec<(String, Value)>,
    /// Applied to one strategy by name (a config file's `[mcts]` table, `--set mcts.width=2`).
    pub scoped: Vec<(String, String, Value)>,
    /// The common options (applied after the config file, before `key=value` pairs).
    pub common: Common,
    /// `key=value` pairs (the last word), shared or scoped like the file's.
    pub set_shared: Vec<(String, Value)>,
    /// Scoped `key=value` pairs.
    pub set_scoped: Vec<(String, String, Value)>,
}

impl Overrides {
    /// Add a config file's content (a JSON or TOML table): top-level keys that name a
    /// registered strategy and hold a table are scoped to it, the rest are shared.
    pub fn add_config(&mut self, table: Map<String, Value>) {
        for (k, v) in table {
            match (lookup(&k), v) {
                (Ok(e), Value::Object(m)) => {
                    for (key, v) in flatten_leaves(&m) {
                        self.scoped.push((e.name.to_string(), key, v));
                    }
                }
                (_, Value::Object(m)) => {
                    for (key, v) in flatten_leaves(&m) {
                        self.shared.push((format!("{k}.{key}"), v));
                    }
                }
                (_, v) => self.shared.push((k, v)),
            }
        }
    }

    /// Add one `key=value` (`STRATEGY.key=value` scopes it). The value is JSON when it
    /// parses as JSON (`2`, `true`, `"x"`, `{"tokens": 32}`), else a plain string.
    pub fn add_set(&mut self, pair: &str) -> Result<(), SearchError> {
        let Some((key, raw)) = pair.split_once('=') else {
            return Err(SearchError::Setting {
                strategy: "--set".into(),
                reason: format!("{pair:?} is not key=value"),
            });
        };
        let key = key.trim();
        if key.is_empty() {
            return Err(SearchError::Setting {
                strategy: "--set".into(),
                reason: format!("{pair:?} has an empty key"),
            });
        }
        let value = serde_json::from_str(raw.trim()).unwrap_or_else(|_| Value::String(raw.into()));
        match key.split_once('.') {
            Some((head, rest)) if lookup(head).is_ok() => {
                self.set_scoped
                    .push((head.to_string(), rest.to_string(), value))
            }
            _ => self.set_shared.push((key.to_string(), value)),
        }
        Ok(())
    }
}

/// `{"a": {"b": 1}, "c": 2}` → `[("a.b", 1), ("c", 2)]`; an empty table is a leaf.
fn flatten_leaves(m: &Map<String, Value>) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for (k, v) in m {
        match v {
            Value::Object(inner) if !inner.is_empty() => {
                for (k2, v2) in flatten_leaves(inner) {
                    out.push((format!("{k}.{k2}"), v2));
                }
            }
            _ => out.push((k.clone(), v.clone())),
        }
    }
    out
}

/// The leaf keys of a settings object: `sampling.temperature`, `steps.unit`, … (an
/// enum-valued setting such as `steps.unit` is one leaf).
pub fn keys(defaults: &Value) -> Vec<String> {
    let mut out = Vec::new();
    walk_keys("", defaults, &mut out);
    out
}

fn walk_keys(prefix: &str, v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) if !m.is_empty() && prefix != "steps.unit" => {
            for (k, v) in m {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                walk_keys(&key, v, out);
            }
        }
        _ => out.push(prefix.to_string()),
    }
}

/// Set `path` (dotted) in `root` to `value`; the path must exist in the defaults.
fn set_path(root: &mut Value, path: &str, value: Value) -> bool {
    let mut cur = root;
    let parts: Vec<&str> = path.split('.').collect();
    for (i, p) in parts.iter().enumerate() {
        let Value::Object(m) = cur else { return false };
        let Some(next) = m.get_mut(*p) else {
            return false;
        };
        if i + 1 == parts.len() {
            *next = value;
            return true;
        }
        cur = next;
    }
    false
}

impl Entry {
    /// The defaults as JSON.
    pub fn defaults(&self) -> Value {
        (self.defaults)()
    }

    /// The settings' JSON schema (doc comments as descriptions, subschemas inlined).
    pub fn schema(&self) -> Value {
        (self.schema)()
    }

    /// The first paragraph of the strategy's documentation.
    pub fn summary(&self) -> String {
        let doc = self.doc();
        doc.split("\n\n")
            .next()
            .unwrap_or("")
            .replace('\n', " ")
            .trim()
            .to_string()
    }

    /// The strategy's documentation (its settings struct's doc comment).
    pub fn doc(&self) -> String {
        self.schema()["description"]
            .as_str()
            .unwrap_or("")
            .to_string()
    }

    /// Each setting: (key, default, description, allowed values where an enum says so).
    pub fn settings(&self) -> Vec<SettingDoc> {
        let defaults = self.defaults();
        let schema = self.schema();
        keys(&defaults)
            .into_iter()
            .map(|key| {
                let mut node = &schema;
                let mut default = &defaults;
                for part in key.split('.') {
                    node = property(node, part).unwrap_or(&Value::Null);
                    default = &default[part];
                }
                SettingDoc {
                    description: node["description"].as_str().unwrap_or("").to_string(),
                    allowed: allowed_values(node),
                    default: default.clone(),
                    key,
                }
            })
            .collect()
    }

    /// Build from a complete or partial settings object (missing keys keep their
    /// defaults; unknown keys are refused).
    pub fn build(&self, settings: &Value) -> Result<Box<dyn Strategy>, SearchError> {
        let mut merged = self.defaults();
        let Value::Object(given) = settings else {
            return Err(self.error(format!("settings must be an object, not {settings}")));
        };
        for (key, v) in flatten_leaves(given) {
            self.apply(&mut merged, &key, v)?;
        }
        self.finish(merged)
    }

    /// Build with the layers of `o` over the defaults.
    pub fn build_with(&self, o: &Overrides) -> Result<Box<dyn Strategy>, SearchError> {
        let mut merged = self.defaults();
        let known = keys(&merged);
        let has = |k: &str| {
            known
                .iter()
                .any(|x| x == k || x.starts_with(&format!("{k}.")))
        };
        // Shared keys apply where the strategy has them; `resolve` checks that some
        // strategy of the run has each one.
        for (k, v) in o.shared.iter().filter(|(k, _)| has(k)) {
            self.apply(&mut merged, k, v.clone())?;
        }
        for (_, k, v) in o.scoped.iter().filter(|(s, _, _)| s == self.name) {
            self.apply(&mut merged, k, v.clone())?;
        }
        for (_, path, v) in o.common.pairs(self.n_key) {
            if !path.is_empty() && has(&path) {
                self.apply(&mut merged, &path, v)?;
            }
        }
        for (k, v) in o.set_shared.iter().filter(|(k, _)| has(k)) {
            self.apply(&mut merged, k, v.clone())?;
        }
        for (_, k, v) in o.set_scoped.iter().filter(|(s, _, _)| s == self.name) {
            self.apply(&mut merged, k, v.clone())?;
        }
        self.finish(merged)
    }

    fn apply(&self, merged: &mut Value, key: &str, v: Value) -> Result<(), SearchError> {
        if set_path(merged, key, v) {
            Ok(())
        } else {
            Err(self.error(format!(
                "unknown setting `{key}` (its settings: {})",
                keys(&self.defaults()).join(", ")
            )))
        }
    }

    fn finish(&self, merged: Value) -> Result<Box<dyn Strategy>, SearchError> {
        (self.build)(merged).map_err(|e| match e {
            BuildError::Shape(reason) => self.error(reason),
            BuildError::Invalid(e) => self.error(e.to_string()),
        })
    }

    fn error(&self, reason: String) -> SearchError {
        SearchError::Setting {
            strategy: self.name.to_string(),
            reason,
        }
    }
}

/// One setting as `ponder strategies` shows it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SettingDoc {
    /// Dotted key, as `--set` takes it.
    pub key: String,
    /// Its default.
    pub default: Value,
    /// What it is (the field's doc comment: meaning, unit, range).
    pub description: String,
    /// The values an enum-valued setting allows (empty otherwise).
    pub allowed: Vec<String>,
}

/// `properties.<name>` of an object schema, looking through `anyOf` (an `Option`).
fn property<'a>(node: &'a Value, name: &str) -> Option<&'a Value> {
    if let Some(p) = node.get("properties").and_then(|p| p.get(name)) {
        return Some(p);
    }
    node.get("anyOf")?
        .as_array()?
        .iter()
        .find_map(|alt| property(alt, name))
}

/// The values an enum schema allows (`enum`, or `oneOf` of constants / one-key objects).
fn allowed_values(node: &Value) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(vs) = node.get("enum").and_then(Value::as_array) {
        out.extend(vs.iter().filter_map(|v| v.as_str().map(str::to_string)));
    }
    for alt in node
        .get("oneOf")
        .or_else(|| node.get("anyOf"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(c) = alt.get("const").and_then(Value::as_str) {
            out.push(c.to_string());
        } else if let Some(vs) = alt.get("enum").and_then(Value::as_array) {
            out.extend(vs.iter().filter_map(|v| v.as_str().map(str::to_string)));
        } else if let Some(req) = alt.get("required").and_then(Value::as_array) {
            out.extend(
                req.iter()
                    .filter_map(|v| v.as_str().map(|s| format!("{{{s}: …}}"))),
            );
        }
    }
    out
}

/// Build the named strategies with `o`, checking that every shared key and every common
/// option the user set applies to at least one of them (else it would be silently
/// ignored), and that scoped keys name strategies of this run.
pub fn resolve(names: &[String], o: &Overrides) -> Result<Vec<Box<dyn Strategy>>, SearchError> {
    let entries: Vec<&Entry> = names
        .iter()
        .map(|n| lookup(n.trim()))
        .collect::<Result<_, _>>()?;
    let all_keys: Vec<(&Entry, Vec<String>)> =
        entries.iter().map(|e| (*e, keys(&e.defaults()))).collect();
    let someone_has = |k: &str| {
        all_keys
            .iter()
            .any(|(_, ks)| ks.iter().any(|x| x == k || x.starts_with(&format!("{k}."))))
    };
    let list = || {
        entries
            .iter()
            .map(|e| e.name)
            .collect::<Vec<_>>()
            .join(", ")
    };
    for (k, _) in o.shared.iter().chain(&o.set_shared) {
        if !someone_has(k) {
            return Err(SearchError::Setting {
                strategy: list(),
                reason: format!(
                    "unknown setting `{k}` (settings: {})",
                    all_keys
                        .iter()
                        .map(|(e, ks)| format!("{}: {}", e.name, ks.join(", ")))
                        .collect::<Vec<_>>()
                        .join("; ")
                ),
            });
        }
    }
    for (s, _, _) in o.scoped.iter().chain(&o.set_scoped) {
        if !entries.iter().any(|e| e.name == s) {
            return Err(SearchError::Setting {
                strategy: s.clone(),
                reason: format!(
                    "settings given for {s}, which this run does not use ({})",
                    list()
                ),
            });
        }
    }
    for (flag, path, _) in o.common.pairs(None) {
        let applies = |e: &Entry| {
            let p = if flag == "--n" {
                e.n_key.unwrap_or("").to_string()
            } else {
                path.clone()
            };
            !p.is_empty()
                && keys(&e.defaults())
                    .iter()
                    .any(|x| *x == p || x.starts_with(&format!("{p}.")))
        };
        if !entries.iter().any(|e| applies(e)) {
            return Err(SearchError::Setting {
                strategy: list(),
                reason: format!("{flag} does not apply to {}", list()),
            });
        }
    }
    entries.iter().map(|e| e.build_with(o)).collect()
}

/// The shared part of a `Settings` impl's checks for strategies that sample whole
/// texts: sampling parameters and a token limit ≥ 1.
pub(crate) fn check_generation(
    sampling: &ponder_engine::SamplingParams,
    max_tokens: usize,
) -> Result<(), SearchError> {
    sampling.validate()?;
    if max_tokens == 0 {
        return Err(crate::strategy::invalid("max_tokens", "0 (must be ≥ 1)"));
    }
    Ok(())
}
