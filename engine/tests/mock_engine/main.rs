//! Engine behaviour on the mock backend: prefill once, fork, batching, determinism,
//! stop conditions, capacity errors, budgets, and no leaked sequences; [`hardening`]:
//! bad input, faults and panics, fair admission.

mod admission;
mod hardening;

use ponder_engine::mock::{ChoiceModel, MockConfig, MockCounters};
use ponder_engine::{Budget, Engine, EngineError, Finish, GenSpec, SamplingParams};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

const PROMPT: &str = "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n";

fn engine_with(n_ctx: u32, n_seq_max: u32) -> (Engine, Arc<MockCounters>) {
    let counters = Arc::new(MockCounters::default());
    let cfg = MockConfig {
        n_ctx,
        n_seq_max,
        counters: counters.clone(),
        ..Default::default()
    };
    (Engine::mock(cfg).unwrap(), counters)
}

fn spec(t: f32, max: usize) -> GenSpec {
    GenSpec::new(
        SamplingParams {
            temperature: t,
            ..Default::default()
        },
        max,
    )
}

#[test]
fn prompt_is_evaluated_once_and_steps_are_batched() {
    let (engine, counters) = engine_with(8192, 16);
    let s = engine.session(1, 0, Budget::unlimited());
    let root = s.prefill(PROMPT).unwrap();
    let mut kids = root.fork(8).unwrap();
    drop(root);
    s.extend(
        kids.iter_mut(),
        &spec(0.8, 20).with_stop(Vec::<String>::new()),
    )
    .unwrap();
    let st = s.stats();
    assert_eq!(
        st.prompt_tokens as usize,
        PROMPT.len(),
        "prompt evaluated exactly once"
    );
    let generated: usize = kids.iter().map(|k| k.tokens().len()).sum();
    assert_eq!(st.generated_tokens as usize, generated);
    // Every generated token but each branch's last is fed back.
    assert_eq!(
        st.decoded_tokens as usize,
        PROMPT.len() + generated - kids.len()
    );
    assert_eq!(st.forks, 8);
    // One decode per step for all 8 branches: the longest branch sets the step count.
    let longest = kids.iter().map(|k| k.tokens().len()).max().unwrap();
    assert_eq!(counters.max_batch.load(Relaxed) as usize, PROMPT.len());
    assert_eq!(st.decode_calls as usize, 1 + longest - 1);
    assert!(st.mean_batch_occupancy > 4.0, "{}", st.mean_batch_occupancy);
}

#[test]
fn same_seed_same_text_different_branches_differ() {
    let run = |seed| {
        let (engine, _) = engine_with(8192, 16);
        let s = engine.session(seed, 3, Budget::unlimited());
        let root = s.prefill(PROMPT).unwrap();
        let mut kids = root.fork(6).unwrap();
        s.extend(kids.iter_mut(), &spec(1.0, 24)).unwrap();
        kids.iter().map(|k| k.text()).collect::<Vec<_>>()
    };
    let a = run(7);
    assert_eq!(a, run(7));
    assert_ne!(a, run(8));
    let distinct: std::collections::HashSet<_> = a.iter().collect();
    assert!(distinct.len() >= 2, "{a:?}");
}

#[test]
fn greedy_text_is_the_same_alone_and_in_a_batch() {
    let (engine, _) = engine_with(8192, 16);
    let s = engine.session(0, 0, Budget::unlimited());
    let root = s.prefill(PROMPT).unwrap();
    let mut alone = root.fork(1).unwrap().pop().unwrap();
    alone.extend(&spec(0.0, 30)).unwrap();
    let mut batch = root.fork(8).unwrap();
    // Mix greedy with sampled neighbours: only branch 0 is greedy.
    let (first, rest) = batch.split_at_mut(1);
    let other = s.clone();
    std::thread::scope(|sc| {
        sc.spawn(|| other.extend(rest.iter_mut(), &spec(1.0, 30)).unwrap());
        s.extend(first.iter_mut(), &spec(0.0, 30)).unwrap();
    });
    assert_eq!(alone.text(), batch[0].text());
    assert_eq!(alone.logprobs(), batch[0].logprobs());
}

#[test]
fn work_from_many_threads_shares_decode_steps() {
    let (engine, counters) = engine_with(16384, 64);
    std::thread::scope(|sc| {
        for p in 0..4 {
            let engine = engine.clone();
            sc.spawn(move || {
                let s = engine.session(0, p, Budget::unlimited());
                let root = s.prefill(PROMPT).unwrap();
                let mut kids = root.fork(4).unwrap();
                s.extend(
                    kids.iter_mut(),
                    &spec(0.8, 40).with_stop(Vec::<String>::new()),
                )
                .unwrap();
            });
        }
    });
    let st = engine.stats();
    // 16 branches; if nothing were shared, occupancy would be at most 4.
    assert!(
        st.mean_batch_occupancy > 4.0,
        "occupancy {}",
        st.mean_batch_occupancy
    );
    assert!(counters.decode_calls.load(Relaxed) < 4 * 40);
}

#[test]
fn appended_text_logprobs_match_generation() {
    let (engine, _) = engine_with(8192, 8);
    let s = engine.session(5, 0, Budget::unlimited());
    let root = s.prefill(PROMPT).unwrap();
    let mut a = root.fork(1).unwrap().pop().unwrap();
    a.extend(&spec(1.0, 12)).unwrap();
    let mut b = root.fork(1).unwrap().pop().unwrap();
    let lps = b.append_tokens(a.tokens().to_vec(), true).unwrap();
    assert_eq!(lps.len(), a.tokens().len());
    for (x, y) in lps.iter().zip(a.logprobs()) {
        assert!((x - y).abs() < 1e-5, "{lps:?} vs {:?}", a.logprobs());
    }
    assert_eq!(a.text(), b.text());
    // Logits at the end of a prefilled/appended branch, for chosen tokens.
    let first = root.next_logprobs(&[a.tokens()[0], 300]).unwrap();
    assert!((first[0] - a.logprobs()[0]).abs() < 1e-5);
    assert!(first[1].is_nan(), "outside the vocabulary");
    // After extend the last sampled token is pending: a clear error, not stale logits.
    assert!(a.next_logprobs(&[0]).is_err());
}

#[test]
fn fork_at_a_prefix_continues_like_the_parent() {
    let (engine, _) = engine_with(8192, 8);
    let s = engine.session(0, 0, Budget::unlimited());
    let mut root = s.prefill(PROMPT).unwrap();
    root.extend(&spec(0.0, 20)).unwrap();
    let full = root.text();
    let mut kid = root.fork_at(1, 5).unwrap().pop().unwrap();
    assert_eq!(kid.tokens(), &root.tokens()[..5]);
    kid.extend(&spec(0.0, 15)).unwrap();
    assert_eq!(kid.text(), full, "greedy continuation from a shared prefix");
    // Truncate and regrow in place.
    root.truncate(3).unwrap();
    root.extend(&spec(0.0, 17)).unwrap();
    assert_eq!(root.text(), full);
}

#[test]
fn stop_strings_and_eog_end_generation() {
    let model = ChoiceModel::new(&[("one\n\ntwo", 1.0)]);
    let engine = Engine::mock(MockConfig {
        model: Arc::new(model),
        ..Default::default()
    })
    .unwrap();
    let s = engine.session(0, 0, Budget::unlimited());
    let mut b = s.prefill(PROMPT).unwrap();
    let f = b
        .extend(&spec(0.0, 50).with_stop(["\n\n"]))
        .unwrap()
        .clone();
    assert_eq!(f, Finish::Stop("\n\n".into()));
    assert_eq!(b.text(), "one\n\n");
    let f = b.extend(&spec(0.0, 50)).unwrap().clone();
    assert_eq!(f, Finish::Eog);
    assert_eq!(b.text(), "one\n\ntwo");
    let mut c = s.prefill(PROMPT).unwrap();
    assert_eq!(c.extend(&spec(0.0, 2)).unwrap(), &Finish::MaxTokens);
    assert_eq!(c.text(), "on");
}

#[test]
fn budget_caps_tokens_across_branches() {
    let (engine, _) = engine_with(8192, 16);
    let s = engine.session(0, 0, Budget::tokens(50));
    let root = s.prefill(PROMPT).unwrap();
    let mut kids = root.fork(8).unwrap();
    s.extend(
        kids.iter_mut(),
        &spec(0.8, 100).with_stop(Vec::<String>::new()),
    )
    .unwrap();
    assert!(
        s.stats().generated_tokens <= 50 + 8,
        "{}",
        s.stats().generated_tokens
    );
    assert!(kids.iter().any(|k| k.finish() == Some(&Finish::Budget)));
    let cancel = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let s2 = engine.session(0, 1, Budget::unlimited().with_cancel(cancel.clone()));
    let mut b = s2.prefill(PROMPT).unwrap();
    cancel.store(true, Relaxed);
    assert_eq!(b.extend(&spec(0.8, 10)).unwrap(), &Finish::Cancelled);
    assert!(b.tokens().is_empty());
    // A cancelled problem starts nothing new.
    assert!(matches!(s2.prefill(PROMPT), Err(EngineError::Cancelled)));
}

#[test]
fn bad_requests_get_clear_errors() {
    let (engine, _) = engine_with(256, 4);
    let s = engine.session(0, 0, Budget::unlimited());
    let long = "x".repeat(300);
    match s.prefill(&long) {
        Err(EngineError::PromptTooLong {
            tokens: 300,
            n_ctx: 256,
        }) => {}
        other => panic!("{other:?}"),
    }
    let root = s.prefill(PROMPT).unwrap();
    match root.fork(4) {
        Err(EngineError::TooManySequences {
            wanted: 4,
            available: 3,
            max: 4,
        }) => {}
        other => panic!("{other:?}"),
    }
    let mut kids = root.fork(3).unwrap();
    let e = s.extend(kids.iter_mut(), &spec(0.8, 0)).unwrap_err();
    assert!(e.to_string().contains("max_tokens"), "{e}");
    // 3 × 200 new cells cannot fit in 256 with the prompt: a clear error, not an abort.
    let e = s.extend(
        kids.iter_mut(),
        &spec(0.8, 200).with_stop(Vec::<String>::new()),
    );
    assert!(matches!(e, Err(EngineError::KvCapacity { .. })), "{e:?}");
    let e = GenSpec::new(
        SamplingParams {
            top_p: 1.5,
            ..Default::default()
        },
        5,
    )
    .validate()
    .unwrap_err();
    assert!(e.to_string().contains("top_p"));
}

#[test]
fn released_branches_free_their_sequences() {
    let (engine, counters) = engine_with(4096, 8);
    for p in 0..1000 {
        let s = engine.session(0, p, Budget::unlimited());
        let root = s.prefill("hi").unwrap();
        let mut kids = root.fork(7).unwrap();
        s.extend(kids.iter_mut(), &spec(0.8, 3)).unwrap();
    }
    // Drops are asynchronous messages: a final round trip flushes them.
    engine.tokenize("", false, false).unwrap();
    assert_eq!(counters.live_seqs.load(Relaxed), 0);
    let s = engine.session(0, 0, Budget::unlimited());
    let root = s.prefill("hi").unwrap();
    assert_eq!(
        root.fork(7).unwrap().len(),
        7,
        "all 8 sequences are free again"
    );
}

#[test]
fn settled_forks_share_the_last_token_and_append_all_batches() {
    let (engine, counters) = engine_with(8192, 16);
    let s = engine.session(3, 0, Budget::unlimited());
    let mut root = s.prefill(PROMPT).unwrap();
    root.extend(&spec(0.8, 6)).unwrap();
    let step = root.tokens().len();
    // Without settling, the last sampled token is not in the KV cache yet.
    engine.settle([&mut root]).unwrap();
    let before = s.stats().decoded_tokens;
    assert_eq!(before as usize, PROMPT.len() + step);
    let mut kids = root.fork(4).unwrap();
    s.extend(kids.iter_mut(), &spec(0.8, 5)).unwrap();
    let st = s.stats();
    let generated: usize = step + kids.iter().map(|k| k.tokens().len() - step).sum::<usize>();
    assert_eq!(st.generated_tokens as usize, generated);
    // Each generated token is fed at most once: the shared one once, each kid's last never.
    assert_eq!(
        st.decoded_tokens as usize,
        PROMPT.len() + generated - kids.len()
    );
    // Appending to all kids is one decode call carrying every kid's tokens.
    engine.settle(kids.iter_mut()).unwrap();
    let calls = counters.decode_calls.load(Relaxed);
    let items = kids
        .iter_mut()
        .map(|k| (k, vec![b'+' as i32, b'\n' as i32]));
    let lps = engine.append_all(items, true).unwrap();
    assert_eq!(counters.decode_calls.load(Relaxed), calls + 1);
    assert_eq!(lps.len(), 4);
    assert!(lps
        .iter()
        .all(|l| l.len() == 2 && l.iter().all(|x| x.is_finite())));
    assert!(kids
        .iter()
        .all(|k| k.text().ends_with("+\n") && k.finish().is_none()));
    // Self-certainty is recorded per sampled token, NaN for appended ones.
    let k = &kids[0];
    assert_eq!(k.certainty().len(), k.tokens().len());
    assert!(k.certainty()[..step]
        .iter()
        .all(|c| c.is_finite() && *c >= 0.0));
    assert!(k.certainty()[k.tokens().len() - 1].is_nan());
}

#[test]
fn append_all_rejects_a_branch_of_another_engine() {
    let (a, _) = engine_with(4096, 4);
    let (b, _) = engine_with(4096, 4);
    let mut x = a
        .session(0, 0, Budget::unlimited())
        .prefill(PROMPT)
        .unwrap();
    let err = b.append_all([(&mut x, vec![65])], false).unwrap_err();
    assert!(err.to_string().contains("another engine"), "{err}");
}

#[test]
fn text_after_a_token_count_decodes_only_the_rest() {
    let (engine, _) = engine_with(4096, 4);
    let s = engine.session(0, 0, Budget::unlimited());
    let mut b = s.prefill(PROMPT).unwrap();
    // "é" is two byte-tokens on the mock: split across the cut, it is not sliced in half.
    b.append("ab\u{e9}c", false).unwrap();
    assert_eq!(b.text_after(2), "\u{e9}c");
    assert_eq!(b.text_after(0), b.text());
    assert_eq!(b.text_after(99), "");
    // Cutting inside the character yields replacement text, never a panic.
    assert_eq!(b.text_after(3).chars().last(), Some('c'));
}

/// The mock, except that its KV cache "fills up" after `ok` decode calls, as llama.cpp
/// reports when it finds no slot for a batch.
struct FillsUp {
    inner: ponder_engine::mock::MockBackend,
    ok: usize,
}

impl ponder_engine::Backend for FillsUp {
    fn info(&self) -> &ponder_engine::BackendInfo {
        self.inner.info()
    }
    fn decode(
        &mut self,
        batch: &[ponder_engine::BatchToken],
        on_row: &mut ponder_engine::OnRow<'_>,
    ) -> ponder_engine::Result<()> {
        if self.ok == 0 {
            return Err(EngineError::KvFull {
                needed: batch.len(),
                free: 0,
                n_ctx: self.inner.info().n_ctx,
            });
        }
        self.ok -= 1;
        self.inner.decode(batch, on_row)
    }
    fn copy_seq(&mut self, src: i32, dst: i32, len: u32) -> ponder_engine::Result<()> {
        self.inner.copy_seq(src, dst, len)
    }
    fn truncate_seq(&mut self, seq: i32, from: u32) -> ponder_engine::Result<()> {
        self.inner.truncate_seq(seq, from)
    }
    fn tokenize(&self, text: &str, special: bool, bos: bool) -> ponder_engine::Result<Vec<i32>> {
        self.inner.tokenize(text, special, bos)
    }
    fn piece(&self, token: i32) -> Vec<u8> {
        self.inner.piece(token)
    }
    fn is_eog(&self, token: i32) -> bool {
        self.inner.is_eog(token)
    }
    fn apply_template(
        &self,
        format: &ponder_engine::PromptFormat,
        messages: &[ponder_engine::ChatMessage],
    ) -> ponder_engine::Result<String> {
        self.inner.apply_template(format, messages)
    }
}

#[test]
fn a_full_backend_cache_reaches_every_branch_as_kv_full() {
    let backend = FillsUp {
        inner: ponder_engine::mock::MockBackend::new(MockConfig::default()),
        ok: 1, // the prefill
    };
    let engine = Engine::new(Box::new(backend)).unwrap();
    let s = engine.session(0, 0, Budget::unlimited());
    let root = s.prefill(PROMPT).unwrap();
    let mut kids = root.fork(3).unwrap();
    let e = s.extend(kids.iter_mut(), &spec(0.8, 8)).unwrap_err();
    // The failed batch is retried branch by branch, and each branch's own one sampled
    // token fails too; the prompt's cells are held once.
    match e {
        EngineError::KvFull {
            needed: 1,
            free,
            n_ctx: 8192,
        } => assert_eq!(free, 8192 - PROMPT.len()),
        other => panic!("{other:?}"),
    }
    // The branches are still usable handles: releasing them frees every sequence.
    drop(kids);
    drop(root);
    assert_eq!(engine.capacity().unwrap().free_seqs, 64);
}
