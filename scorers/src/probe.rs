//! A correctness probe on the policy's own hidden states (LiLaVe / ReProbe style,
//! `strategies.md` §5.2): a logistic regression over the final-layer hidden state at a
//! sample's last token, trained (`ponder train-probe`) on samples labelled by whether
//! their final answer was right. It scores whole samples and partial ones (a step's
//! end) from states the engine computes anyway: no second model, no extra decode.
//!
//! The probe file is JSON ([`ProbeFile`]): the model it was made for (file name,
//! SHA-256, hidden width), the layer, the training data and its split, the
//! standardisation and the weights. A probe is refused for any other model.

use crate::{Sample, ScoreError, Scorer};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The format tag of a probe file this version reads and writes.
pub const FORMAT: &str = "ponder-probe/1";

/// The layer a probe reads: the final layer's output (after the output norm), which
/// llama.cpp gives as the embedding of each position.
pub const FINAL_LAYER: &str = "final";

/// The model a probe was trained on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbeModel {
    /// The GGUF file's name (for messages; the checksum is what must match).
    pub file: String,
    /// SHA-256 of the GGUF file, lowercase hex.
    pub sha256: String,
    /// Width of one hidden state (floats).
    pub n_embd: usize,
}

/// What a probe was trained on: enough to re-create it and to keep evaluation off it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbeTraining {
    /// The dataset file, as given.
    pub dataset: String,
    /// Dataset positions (0-based, end exclusive) the probe was fitted on.
    pub train: [usize; 2],
    /// Dataset positions (0-based, end exclusive) its validation AUROC comes from.
    pub validation: [usize; 2],
    /// Samples drawn per problem.
    pub samples: usize,
    /// Their sampling temperature.
    pub temperature: f32,
    /// Their token limit.
    pub max_tokens: usize,
    /// The run's seed.
    pub seed: u64,
    /// Hidden states used: each sample's last token, and each step end when true.
    pub step_ends: bool,
    /// Training examples (states) and how many of them were labelled right.
    pub examples: usize,
    /// Of `examples`, those of samples whose final answer was right.
    pub positives: usize,
    /// The L2 regularisation strength of the fit.
    pub alpha: f64,
    /// AUROC on the training examples' samples (last-token states).
    pub train_auroc: Option<f64>,
    /// AUROC on the validation problems' samples (last-token states).
    pub validation_auroc: Option<f64>,
}

/// A logistic regression on standardised features:
/// `p(right) = σ(bias + Σ wᵢ·(xᵢ − meanᵢ)/scaleᵢ)`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Logistic {
    /// Per-feature mean of the training states.
    pub mean: Vec<f64>,
    /// Per-feature scale (standard deviation, 1 where it was 0).
    pub scale: Vec<f64>,
    /// Per-feature weight on the standardised state.
    pub weights: Vec<f64>,
    /// The intercept.
    pub bias: f64,
}

impl Logistic {
    /// P(right) for one state of the regression's width.
    pub fn predict(&self, state: &[f32]) -> f64 {
        let z: f64 = self.bias
            + state
                .iter()
                .zip(&self.mean)
                .zip(&self.scale)
                .zip(&self.weights)
                .map(|(((&x, m), s), w)| w * (x as f64 - m) / s)
                .sum::<f64>();
        1.0 / (1.0 + (-z).exp())
    }
}

/// A probe as stored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbeFile {
    /// [`FORMAT`].
    pub format: String,
    /// The model the hidden states come from.
    pub model: ProbeModel,
    /// The layer the states are read at ([`FINAL_LAYER`]).
    pub layer: String,
    /// How it was trained.
    pub training: ProbeTraining,
    /// The regression.
    pub logistic: Logistic,
}

/// Why a probe file cannot be used. Each names the file.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// It could not be read.
    #[error("cannot read the probe file {}: {source}", .path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// It is not a probe file (JSON of the wrong shape, or not JSON).
    #[error("the probe file {} does not parse: {message}", .path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// What the parser said.
        message: String,
    },
    /// Its contents contradict themselves or this version.
    #[error("the probe file {} is unusable: {reason}", .path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// It was trained on another model.
    #[error(
        "the probe file {} was trained on {} (sha256 {}), not on this model (sha256 {found}): \
         train one for it with `ponder train-probe`",
        .path.display(), .made_for.file, .made_for.sha256
    )]
    WrongModel {
        /// The file.
        path: PathBuf,
        /// The model it was made for.
        made_for: ProbeModel,
        /// The checksum of the model in use.
        found: String,
    },
    /// Its width is not the model's hidden width.
    #[error(
        "the probe file {} reads hidden states of width {}, but this model's are {found} wide",
        .path.display(), .expected
    )]
    WrongWidth {
        /// The file.
        path: PathBuf,
        /// The probe's width.
        expected: usize,
        /// The model's width.
        found: usize,
    },
}

impl ProbeFile {
    /// Read and check a probe file (format, layer, consistent lengths, finite numbers).
    pub fn load(path: &Path) -> Result<Self, ProbeError> {
        let text = std::fs::read_to_string(path).map_err(|source| ProbeError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let file: ProbeFile = serde_json::from_str(&text).map_err(|e| ProbeError::Parse {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        file.validate().map_err(|reason| ProbeError::Invalid {
            path: path.to_path_buf(),
            reason,
        })?;
        Ok(file)
    }

    /// The file's own consistency: what [`ProbeFile::load`] checks after parsing.
    pub fn validate(&self) -> Result<(), String> {
        if self.format != FORMAT {
            return Err(format!(
                "format {:?} (this ponder reads {FORMAT:?})",
                self.format
            ));
        }
        if self.layer != FINAL_LAYER {
            return Err(format!(
                "layer {:?} (only the {FINAL_LAYER:?} layer's states are recorded)",
                self.layer
            ));
        }
        let d = self.model.n_embd;
        if d == 0 {
            return Err("the model's hidden width is 0".into());
        }
        let l = &self.logistic;
        for (name, v) in [
            ("mean", &l.mean),
            ("scale", &l.scale),
            ("weights", &l.weights),
        ] {
            if v.len() != d {
                return Err(format!("{name} has {} values, the width is {d}", v.len()));
            }
            if let Some(i) = v.iter().position(|x| !x.is_finite()) {
                return Err(format!("{name}[{i}] is not a finite number"));
            }
        }
        if let Some(i) = l.scale.iter().position(|&s| s <= 0.0) {
            return Err(format!("scale[{i}] is not positive"));
        }
        if !l.bias.is_finite() {
            return Err("the bias is not a finite number".into());
        }
        Ok(())
    }

    /// Refuse a probe made for another model (by checksum) or hidden width.
    pub fn check_model(&self, path: &Path, sha256: &str, n_embd: usize) -> Result<(), ProbeError> {
        if !self.model.sha256.eq_ignore_ascii_case(sha256) {
            return Err(ProbeError::WrongModel {
                path: path.to_path_buf(),
                made_for: self.model.clone(),
                found: sha256.to_string(),
            });
        }
        if self.model.n_embd != n_embd {
            return Err(ProbeError::WrongWidth {
                path: path.to_path_buf(),
                expected: self.model.n_embd,
                found: n_embd,
            });
        }
        Ok(())
    }

    /// P(right) for one hidden state of the probe's width.
    pub fn predict(&self, state: &[f32]) -> f64 {
        self.logistic.predict(state)
    }
}

/// The probe as a scorer: a sample's score is the probe's P(right) at its last sampled
/// token's hidden state, in (0, 1).
#[derive(Clone, Debug)]
pub struct Probe {
    file: ProbeFile,
}

impl Probe {
    /// The probe of `file` for the model with this checksum and hidden width (refused
    /// when it was made for another).
    pub fn new(
        file: ProbeFile,
        path: &Path,
        sha256: &str,
        n_embd: usize,
    ) -> Result<Self, ProbeError> {
        file.check_model(path, sha256, n_embd)?;
        Ok(Self { file })
    }
    /// The stored probe.
    pub fn file(&self) -> &ProbeFile {
        &self.file
    }
}

impl Scorer for Probe {
    fn name(&self) -> &str {
        "probe"
    }
    fn needs_hidden(&self) -> bool {
        true
    }
    fn score(&self, s: &Sample<'_>) -> Result<f64, ScoreError> {
        let Some(h) = s.hidden else {
            return Err(ScoreError::new(
                "probe",
                "the sample has no hidden state (the policy engine must record them: load it \
                 with hidden states)",
            ));
        };
        if h.len() != self.file.model.n_embd {
            return Err(ScoreError::new(
                "probe",
                format!(
                    "a hidden state of width {}, the probe reads {}",
                    h.len(),
                    self.file.model.n_embd
                ),
            ));
        }
        Ok(self.file.predict(h))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A width-2 probe that says right when the first feature is high.
    pub(crate) fn probe_file() -> ProbeFile {
        ProbeFile {
            format: FORMAT.into(),
            model: ProbeModel {
                file: "m.gguf".into(),
                sha256: "ab".repeat(32),
                n_embd: 2,
            },
            layer: FINAL_LAYER.into(),
            training: ProbeTraining {
                dataset: "d.jsonl".into(),
                train: [0, 8],
                validation: [8, 10],
                samples: 4,
                temperature: 0.8,
                max_tokens: 64,
                seed: 0,
                step_ends: true,
                examples: 40,
                positives: 20,
                alpha: 1.0,
                train_auroc: Some(1.0),
                validation_auroc: Some(1.0),
            },
            logistic: Logistic {
                mean: vec![0.5, 0.0],
                scale: vec![0.5, 1.0],
                weights: vec![2.0, 0.0],
                bias: 0.0,
            },
        }
    }

    #[test]
    fn predicts_the_logistic_of_the_standardised_state() {
        let f = probe_file();
        // z = 2 · (1 − 0.5) / 0.5 = 2.
        assert!((f.predict(&[1.0, 7.0]) - 1.0 / (1.0 + (-2.0f64).exp())).abs() < 1e-12);
        assert!((f.predict(&[0.5, -3.0]) - 0.5).abs() < 1e-12);
    }

    #[test]
    fn scores_a_sample_by_its_hidden_state_and_names_what_is_missing() {
        let path = Path::new("p.json");
        let p = Probe::new(probe_file(), path, &"AB".repeat(32), 2).unwrap();
        assert!(p.needs_hidden());
        let (hi, lo) = ([1.0f32, 0.0], [0.0f32, 0.0]);
        let s = |h: &[f32]| {
            p.score(&Sample::new("q", "t").with_hidden(Some(h)))
                .unwrap()
        };
        let (hi, lo) = (s(&hi), s(&lo));
        assert!(hi > 0.5 && lo < 0.5, "{hi} {lo}");
        let e = p.score(&Sample::new("q", "t")).unwrap_err().to_string();
        assert!(e.contains("no hidden state"), "{e}");
        let e = p
            .score(&Sample::new("q", "t").with_hidden(Some(&[1.0, 2.0, 3.0])))
            .unwrap_err()
            .to_string();
        assert!(e.contains("width 3, the probe reads 2"), "{e}");
    }

    #[test]
    fn another_models_probe_is_refused() {
        let path = Path::new("p.json");
        let e = Probe::new(probe_file(), path, &"cd".repeat(32), 2).unwrap_err();
        let m = e.to_string();
        assert!(
            m.contains("was trained on m.gguf") && m.contains("not on this model"),
            "{m}"
        );
        let e = Probe::new(probe_file(), path, &"ab".repeat(32), 896).unwrap_err();
        assert!(
            e.to_string()
                .contains("width 2, but this model's are 896 wide"),
            "{e}"
        );
    }

    #[test]
    fn bad_files_are_named_with_what_is_wrong() {
        let dir = std::env::temp_dir().join(format!("ponder-probe-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let write = |name: &str, text: &str| {
            let p = dir.join(name);
            std::fs::write(&p, text).unwrap();
            p
        };
        let e = ProbeFile::load(&write("a.json", "not json")).unwrap_err();
        assert!(e.to_string().contains("a.json does not parse"), "{e}");
        let e = ProbeFile::load(&write("b.json", "{\"format\": 1}")).unwrap_err();
        assert!(e.to_string().contains("b.json does not parse"), "{e}");
        let mut f = probe_file();
        f.logistic.weights.pop();
        let e = ProbeFile::load(&write("c.json", &serde_json::to_string(&f).unwrap())).unwrap_err();
        assert!(
            e.to_string()
                .contains("weights has 1 values, the width is 2"),
            "{e}"
        );
        let mut f = probe_file();
        f.format = "ponder-probe/9".into();
        let e = ProbeFile::load(&write("d.json", &serde_json::to_string(&f).unwrap())).unwrap_err();
        assert!(e.to_string().contains("format \"ponder-probe/9\""), "{e}");
        let e = ProbeFile::load(&dir.join("none.json")).unwrap_err();
        assert!(e.to_string().contains("cannot read the probe file"), "{e}");
        let good = write("e.json", &serde_json::to_string(&probe_file()).unwrap());
        assert_eq!(ProbeFile::load(&good).unwrap(), probe_file());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
