//! Property test of the scheduler: random sequences of prefill, fork, extend (alone and
//! batched), append, truncate and release against the mock, in a context small enough
//! that capacity errors happen. Whatever the sequence:
//! - the only errors are the capacity ones a caller can act on (never a decode error:
//!   the mock refuses non-contiguous positions, nor an unknown sequence or a panic);
//! - nothing stays reserved between calls, and what is used never exceeds the context;
//! - every branch's cache holds exactly its tokens: its next-token log-probabilities
//!   equal those of a fresh prefill of the same tokens on another engine;
//! - once every branch is dropped, every cell and sequence id is free again.

use ponder_engine::mock::{MockBackend, MockConfig};
use ponder_engine::{
    Backend, Branch, Budget, Engine, EngineError, GenSpec, SamplingParams, Token, WorkerOptions,
};
use proptest::prelude::*;
use std::time::Duration;

const N_CTX: u32 = 400;
const N_SEQ: u32 = 8;

#[derive(Clone, Debug)]
enum Op {
    Prefill(Vec<Token>),
    Fork { at: usize, n: usize },
    ForkAt { at: usize, n: usize, keep: f64 },
    Extend { at: usize, max: usize, t: f32 },
    ExtendAll { max: usize },
    Append { at: usize, tokens: Vec<Token> },
    Truncate { at: usize, keep: f64 },
    Release { at: usize },
}

fn tokens(max: usize) -> impl Strategy<Value = Vec<Token>> {
    prop::collection::vec(97..123i32, 1..max)
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => tokens(60).prop_map(Op::Prefill),
        2 => (any::<usize>(), 1..4usize).prop_map(|(at, n)| Op::Fork { at, n }),
        1 => (any::<usize>(), 1..3usize, 0.0..1.0f64)
            .prop_map(|(at, n, keep)| Op::ForkAt { at, n, keep }),
        3 => (any::<usize>(), 1..40usize, prop_oneof![Just(0.0f32), Just(0.9f32)])
            .prop_map(|(at, max, t)| Op::Extend { at, max, t }),
        1 => (1..30usize).prop_map(|max| Op::ExtendAll { max }),
        2 => (any::<usize>(), tokens(50)).prop_map(|(at, tokens)| Op::Append { at, tokens }),
        2 => (any::<usize>(), 0.0..1.0f64).prop_map(|(at, keep)| Op::Truncate { at, keep }),
        2 => any::<usize>().prop_map(|at| Op::Release { at }),
    ]
}

fn engine(n_ctx: u32, n_seq_max: u32) -> Engine {
    let cfg = MockConfig {
        n_ctx,
        n_seq_max,
        n_batch: 32,
        ..Default::default()
    };
    Engine::spawn(
        move || Ok(Box::new(MockBackend::new(cfg)) as Box<dyn Backend>),
        WorkerOptions {
            capacity_wait: Duration::from_millis(5),
            overtake_for: Duration::from_millis(1),
        },
    )
    .unwrap()
}

/// Errors a caller is told to act on: the request does not fit (now or ever).
fn acceptable(e: &EngineError) -> bool {
    matches!(
        e,
        EngineError::KvCapacity { .. }
            | EngineError::TooManySequences { .. }
            | EngineError::PromptTooLong { .. }
    )
}

/// A live branch with the prompt it was prefilled from.
struct Live {
    prompt: Vec<Token>,
    branch: Branch,
}

fn check(r: Result<(), EngineError>, what: &Op) -> Result<(), TestCaseError> {
    match r {
        Ok(()) => Ok(()),
        Err(e) if acceptable(&e) => Ok(()),
        Err(e) => Err(TestCaseError::fail(format!("{what:?}: {e:?}"))),
    }
}

fn run(ops: &[Op]) -> Result<(), TestCaseError> {
    let e = engine(N_CTX, N_SEQ);
    let session = e.session(7, 0, Budget::unlimited());
    let mut live: Vec<Live> = Vec::new();
    for op in ops {
        let pick = |at: usize| (!live.is_empty()).then(|| at % live.len());
        let r: Result<(), EngineError> = match op {
            Op::Prefill(t) => session.prefill_tokens(t.clone()).map(|branch| {
                live.push(Live {
                    prompt: t.clone(),
                    branch,
                })
            }),
            Op::Fork { at, n } => match pick(*at) {
                None => Ok(()),
                Some(i) => live[i].branch.fork(*n).map(|kids| {
                    let prompt = live[i].prompt.clone();
                    live.extend(kids.into_iter().map(|branch| Live {
                        prompt: prompt.clone(),
                        branch,
                    }))
                }),
            },
            Op::ForkAt { at, n, keep } => match pick(*at) {
                None => Ok(()),
                Some(i) => {
                    let len = (live[i].branch.tokens().len() as f64 * keep) as usize;
                    live[i].branch.fork_at(*n, len).map(|kids| {
                        let prompt = live[i].prompt.clone();
                        live.extend(kids.into_iter().map(|branch| Live {
                            prompt: prompt.clone(),
                            branch,
                        }))
                    })
                }
            },
            Op::Extend { at, max, t } => match pick(*at) {
                None => Ok(()),
                Some(i) => {
                    let spec = GenSpec::new(
                        SamplingParams {
                            temperature: *t,
                            ..Default::default()
                        },
                        *max,
                    );
                    live[i].branch.extend(&spec).map(|_| ())
                }
            },
            Op::ExtendAll { max } => {
                let spec = GenSpec::new(SamplingParams::default(), *max);
                session
                    .extend(live.iter_mut().map(|l| &mut l.branch), &spec)
                    .map(|_| ())
            }
            Op::Append { at, tokens } => match pick(*at) {
                None => Ok(()),
                Some(i) => live[i]
                    .branch
                    .append_tokens(tokens.clone(), true)
                    .map(|_| ()),
            },
            Op::Truncate { at, keep } => match pick(*at) {
                None => Ok(()),
                Some(i) => {
                    let len = (live[i].branch.tokens().len() as f64 * keep) as usize;
                    live[i].branch.truncate(len)
                }
            },
            Op::Release { at } => {
                if let Some(i) = pick(*at) {
                    live.swap_remove(i);
                }
                Ok(())
            }
        };
        check(r, op)?;
        let cap = e.capacity().unwrap();
        prop_assert_eq!(cap.reserved, 0, "reserved between calls after {:?}", op);
        prop_assert!(cap.used <= cap.n_ctx);
        prop_assert_eq!(cap.free_seqs, N_SEQ as usize - live.len());
    }
    // Each branch's cache holds exactly its tokens.
    let reference = engine(1 << 14, 2);
    let probe: Vec<Token> = vec![97, 98, 99, 120];
    for l in &mut live {
        // Feed what is pending (the last sampled token) so its logits are at hand.
        match l.branch.append_tokens(vec![97], false) {
            Ok(_) => {}
            Err(e) if acceptable(&e) => continue,
            Err(e) => return Err(TestCaseError::fail(format!("final append: {e:?}"))),
        }
        let got = l.branch.next_logprobs(&probe).unwrap();
        let mut all = l.prompt.clone();
        all.extend_from_slice(l.branch.tokens());
        let fresh = reference
            .session(0, 0, Budget::unlimited())
            .prefill_tokens(all)
            .unwrap();
        prop_assert_eq!(got, fresh.next_logprobs(&probe).unwrap());
    }
    drop(live);
    let cap = e.capacity().unwrap();
    prop_assert_eq!((cap.used, cap.reserved, cap.waiting), (0, 0, 0));
    prop_assert_eq!(cap.free_seqs, N_SEQ as usize);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]
    #[test]
    fn the_scheduler_keeps_branches_and_cache_in_step(ops in prop::collection::vec(op(), 1..40)) {
        run(&ops)?;
    }
}
