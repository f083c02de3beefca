//! Hardening: a bad token id, a failing or panicking decode and an overflowing size stay
//! with the request that caused them; a failed call leaves its branch as it was; ended
//! branches stay ended; waiting for capacity is fair and fails only work that cannot fit.

use super::{engine_with, spec, PROMPT};
use ponder_engine::mock::{ChoiceModel, FaultHook, MockBackend, MockConfig, MockFault};
use ponder_engine::{
    Backend, BackendInfo, BatchToken, Budget, ChatMessage, Engine, EngineError, Finish, GenSpec,
    OnRow, PromptFormat, Token,
};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::mpsc;
use std::sync::{Arc, Barrier};
use std::time::Duration;

/// A token no mock model ever samples (they keep to printable text): a marker for the
/// sequences a fault hook picks.
const POISON: Token = 7;

fn faulty(fault: FaultHook) -> Engine {
    Engine::mock(MockConfig {
        fault: Some(fault),
        ..Default::default()
    })
    .unwrap()
}

/// `fault` for every sequence holding [`POISON`] with more than `after` tokens after it.
fn poisoned(after: usize, fault: MockFault) -> FaultHook {
    Arc::new(move |ctx: &[Token]| {
        let at = ctx.iter().position(|&t| t == POISON)?;
        (ctx.len() - at > after + 1).then(|| fault.clone())
    })
}

fn tokens(text: &str) -> Vec<Token> {
    text.bytes().map(Token::from).collect()
}

fn no_eog(max: usize) -> GenSpec {
    let mut g = spec(0.8, max);
    g.ignore_eog = true;
    g
}

/// Solve `problems` problems at once on `engine`, one thread each: 4 samples of 40
/// tokens, all started together. Problem `poison`'s prompt ends with [`POISON`].
fn solve_all(engine: &Engine, problems: u64, poison: Option<u64>) -> Vec<Result<Vec<String>>> {
    let barrier = Arc::new(Barrier::new(problems as usize));
    let handles: Vec<_> = (0..problems)
        .map(|p| {
            let (engine, barrier) = (engine.clone(), barrier.clone());
            std::thread::spawn(move || {
                let s = engine.session(11, p, Budget::unlimited());
                let mut prompt = tokens(&format!("{PROMPT}problem {p}: "));
                if poison == Some(p) {
                    prompt.push(POISON);
                }
                let root = s.prefill_tokens(prompt).unwrap();
                let mut bs = root.fork(3).unwrap();
                bs.push(root);
                barrier.wait();
                s.extend(bs.iter_mut(), &no_eog(40))?;
                Ok(bs.iter().map(|b| b.text()).collect())
            })
        })
        .collect();
    handles.into_iter().map(|h| h.join().unwrap()).collect()
}

type Result<T> = std::result::Result<T, EngineError>;

#[test]
fn bad_token_ids_are_refused_at_the_edge() {
    let (engine, _) = engine_with(4096, 4);
    let s = engine.session(0, 0, Budget::unlimited());
    let e = s.prefill_tokens(vec![65, 300]).unwrap_err().to_string();
    assert!(
        e.contains("token id 300") && e.contains("n_vocab 257"),
        "{e}"
    );
    let e = s.prefill_tokens(vec![-1]).unwrap_err().to_string();
    assert!(e.contains("token id -1"), "{e}");
    assert!(matches!(
        s.prefill_tokens(vec![300]),
        Err(EngineError::InvalidToken {
            token: 300,
            n_vocab: 257
        })
    ));
    let mut b = s.prefill(PROMPT).unwrap();
    let e = b
        .append_tokens(vec![65, 257], true)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("token id 257") && e.contains("n_vocab 257"),
        "{e}"
    );
    assert!(b.tokens().is_empty());
    let e = engine.detokenize(&[65, 1000]).unwrap_err().to_string();
    assert!(e.contains("token id 1000"), "{e}");
    // Nothing was sent to the worker: it serves on.
    assert_eq!(engine.detokenize(&[72, 105]).unwrap(), "Hi");
    b.append_tokens(vec![65], true).unwrap();
    b.extend(&spec(0.8, 4)).unwrap();
    assert_eq!(b.tokens()[0], 65);
}

#[test]
fn a_failing_decode_fails_only_the_problem_that_caused_it() {
    let reference = solve_all(&Engine::mock(Default::default()).unwrap(), 4, None);
    for fault in [MockFault::Decode, MockFault::KvFull] {
        let got = solve_all(&faulty(poisoned(4, fault.clone())), 4, Some(3));
        for p in 0..3 {
            assert_eq!(
                got[p].as_ref().unwrap(),
                reference[p].as_ref().unwrap(),
                "{fault:?}: problem {p}"
            );
        }
        match (&fault, &got[3]) {
            (MockFault::Decode, Err(EngineError::Decode { .. }))
            | (MockFault::KvFull, Err(EngineError::KvFull { needed: 1, .. })) => {}
            (f, other) => panic!("{f:?}: {other:?}"),
        }
    }
}

#[test]
fn one_bad_append_in_a_shared_batch_fails_only_its_branch() {
    let run = |engine: &Engine, poison: bool| {
        let (sa, sb) = (
            engine.session(0, 0, Budget::unlimited()),
            engine.session(0, 1, Budget::unlimited()),
        );
        let (a, b) = (sa.prefill(PROMPT).unwrap(), sb.prefill(PROMPT).unwrap());
        let mut xs = a.fork(2).unwrap();
        xs.extend(b.fork(2).unwrap());
        let items = xs.iter_mut().enumerate().map(|(i, x)| {
            let mut t = tokens(&format!("step {i}\n"));
            if poison && i == 1 {
                t.insert(2, POISON);
            }
            (x, t)
        });
        let r = engine.append_all(items, true);
        let texts: Vec<String> = xs.iter().map(|x| x.text()).collect();
        let lps: Vec<Vec<f32>> = xs.iter().map(|x| x.logprobs().to_vec()).collect();
        (r, texts, lps)
    };
    let (r, texts, lps) = run(&Engine::mock(Default::default()).unwrap(), false);
    r.unwrap();
    let (bad, got, got_lps) = run(&faulty(poisoned(0, MockFault::Decode)), true);
    assert!(matches!(bad, Err(EngineError::Decode { .. })), "{bad:?}");
    for i in [0, 2, 3] {
        assert_eq!(got[i], texts[i]);
        assert_eq!(got_lps[i], lps[i]);
    }
    assert_eq!(got[1], "", "the failed append left its branch as it was");
}

#[test]
fn a_panicking_decode_fails_only_its_problem_and_the_engine_serves_on() {
    let reference = solve_all(&Engine::mock(Default::default()).unwrap(), 4, None);
    let engine = faulty(poisoned(4, MockFault::Panic));
    let got = solve_all(&engine, 4, Some(3));
    for p in 0..3 {
        assert_eq!(got[p].as_ref().unwrap(), reference[p].as_ref().unwrap());
    }
    let e = got[3].as_ref().unwrap_err().to_string();
    assert!(e.contains("mock fault: panic on sequence"), "{e}");
    let again = solve_all(&engine, 2, None);
    assert_eq!(again[1].as_ref().unwrap(), reference[1].as_ref().unwrap());
}

#[test]
fn a_decode_that_panics_once_is_retried_and_nobody_fails() {
    let fired = Arc::new(AtomicBool::new(false));
    let f = fired.clone();
    let hook: FaultHook = Arc::new(move |ctx: &[Token]| {
        let poisoned = ctx.contains(&POISON) && ctx.len() > PROMPT.len() + 20;
        (poisoned && !f.swap(true, Relaxed)).then_some(MockFault::Panic)
    });
    let reference = solve_all(&Engine::mock(Default::default()).unwrap(), 4, None);
    let got = solve_all(&faulty(hook), 4, Some(3));
    assert!(fired.load(Relaxed));
    for p in 0..3 {
        assert_eq!(got[p].as_ref().unwrap(), reference[p].as_ref().unwrap());
    }
    assert!(got[3].is_ok(), "{:?}", got[3]);
}

/// The mock, except that `is_eog` panics once when `armed` (a panic in the worker's own
/// step, outside any decode), and `piece` once when `armed_piece` (while a command is
/// being taken in).
struct PanicsOnce {
    inner: MockBackend,
    armed: Arc<AtomicBool>,
    armed_piece: Arc<AtomicBool>,
}

impl Backend for PanicsOnce {
    fn info(&self) -> &BackendInfo {
        self.inner.info()
    }
    fn decode(&mut self, batch: &[BatchToken], on_row: &mut OnRow<'_>) -> Result<()> {
        self.inner.decode(batch, on_row)
    }
    fn copy_seq(&mut self, src: i32, dst: i32, len: u32) -> Result<()> {
        self.inner.copy_seq(src, dst, len)
    }
    fn truncate_seq(&mut self, seq: i32, from: u32) -> Result<()> {
        self.inner.truncate_seq(seq, from)
    }
    fn tokenize(&self, text: &str, special: bool, bos: bool) -> Result<Vec<i32>> {
        self.inner.tokenize(text, special, bos)
    }
    fn piece(&self, token: i32) -> Vec<u8> {
        if self.armed_piece.swap(false, Relaxed) {
            panic!("piece exploded");
        }
        self.inner.piece(token)
    }
    fn is_eog(&self, token: i32) -> bool {
        if self.armed.swap(false, Relaxed) {
            panic!("is_eog exploded");
        }
        self.inner.is_eog(token)
    }
    fn apply_template(&self, format: &PromptFormat, messages: &[ChatMessage]) -> Result<String> {
        self.inner.apply_template(format, messages)
    }
}

#[test]
fn a_panic_in_the_worker_step_fails_the_work_in_flight_with_its_message() {
    let armed = Arc::new(AtomicBool::new(false));
    let backend = PanicsOnce {
        inner: MockBackend::new(MockConfig::default()),
        armed: armed.clone(),
        armed_piece: Arc::new(AtomicBool::new(false)),
    };
    let engine = Engine::new(Box::new(backend)).unwrap();
    let s = engine.session(4, 0, Budget::unlimited());
    let root = s.prefill(PROMPT).unwrap();
    let mut kids = root.fork(2).unwrap();
    armed.store(true, Relaxed);
    let e = s.extend(kids.iter_mut(), &spec(0.8, 12)).unwrap_err();
    assert!(e.to_string().contains("is_eog exploded"), "{e}");
    assert!(kids.iter().all(|k| k.tokens().is_empty()));
    // The engine serves on, and the failed call left the branches as they were.
    s.extend(kids.iter_mut(), &spec(0.8, 12)).unwrap();
    let (clean, _) = engine_with(8192, 64);
    let s2 = clean.session(4, 0, Budget::unlimited());
    let root2 = s2.prefill(PROMPT).unwrap();
    let mut kids2 = root2.fork(2).unwrap();
    s2.extend(kids2.iter_mut(), &spec(0.8, 12)).unwrap();
    assert_eq!(kids[0].text(), kids2[0].text());
    assert_eq!(kids[1].text(), kids2[1].text());
    // A panicking query is reported to its caller only.
    let e = engine
        .query(|_| -> u32 { panic!("query exploded") })
        .unwrap_err();
    assert!(e.to_string().contains("query exploded"), "{e}");
    assert_eq!(engine.tokenize("ok", false, false).unwrap().len(), 2);
}

#[test]
fn a_panic_taking_in_a_command_answers_every_part_of_it() {
    let armed_piece = Arc::new(AtomicBool::new(false));
    let backend = PanicsOnce {
        inner: MockBackend::new(MockConfig::default()),
        armed: Arc::new(AtomicBool::new(false)),
        armed_piece: armed_piece.clone(),
    };
    let engine = Engine::new(Box::new(backend)).unwrap();
    let s = engine.session(0, 0, Budget::unlimited());
    let root = s.prefill(PROMPT).unwrap();
    let mut kids = root.fork(3).unwrap();
    // The worker panics taking in the first item's text: the call still gets an answer
    // (not a hang) carrying the panic.
    armed_piece.store(true, Relaxed);
    let items = kids.iter_mut().map(|k| (k, tokens("ok")));
    let e = engine.append_all(items, false).unwrap_err();
    assert!(e.to_string().contains("piece exploded"), "{e}");
    // The branches are usable, and the engine serves on.
    let items = kids.iter_mut().map(|k| (k, tokens("ok")));
    engine.append_all(items, false).unwrap();
    s.extend(kids.iter_mut(), &spec(0.8, 3)).unwrap();
    assert!(kids.iter().all(|k| k.text().starts_with("ok")));
}

#[test]
fn n_batch_zero_is_refused_at_spawn() {
    let e = Engine::mock(MockConfig {
        n_batch: 0,
        ..Default::default()
    })
    .unwrap_err()
    .to_string();
    assert!(e.contains("n_batch"), "{e}");
}

#[test]
fn overflowing_sizes_are_errors_not_panics_or_hangs() {
    let (engine, _) = engine_with(4096, 4);
    let probe = engine.clone();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let s = engine.session(0, 0, Budget::unlimited());
        let mut b = s.prefill(PROMPT).unwrap();
        let fresh = b.extend(&no_eog(usize::MAX)).cloned();
        b.extend(&spec(0.8, 3)).unwrap(); // now a sampled token is pending
        let pending = b.extend(&no_eog(usize::MAX)).cloned();
        let fork = b.fork(usize::MAX).map(|v| v.len());
        let _ = tx.send((fresh, pending, fork, b.tokens().len()));
    });
    let (fresh, pending, fork, len) = rx.recv_timeout(Duration::from_secs(20)).expect("no hang");
    for r in [fresh, pending] {
        match r {
            Err(EngineError::KvCapacity {
                needed: usize::MAX, ..
            }) => {}
            other => panic!("{other:?}"),
        }
    }
    assert!(
        matches!(fork, Err(EngineError::TooManySequences { .. })),
        "{fork:?}"
    );
    assert_eq!(len, 3);
    assert_eq!(probe.capacity().unwrap().reserved, 0);
}

#[test]
fn a_failed_extend_leaves_the_branch_and_its_sequence_in_step() {
    let armed = Arc::new(AtomicBool::new(true));
    let a = armed.clone();
    let hook: FaultHook = Arc::new(move |ctx: &[Token]| {
        (a.load(Relaxed) && ctx.len() > PROMPT.len() + 4).then_some(MockFault::Decode)
    });
    let engine = faulty(hook);
    let s = engine.session(2, 0, Budget::unlimited());
    let mut b = s.prefill(PROMPT).unwrap();
    let e = b.extend(&spec(0.8, 20)).unwrap_err();
    assert!(matches!(e, EngineError::Decode { .. }), "{e:?}");
    assert!(b.tokens().is_empty(), "the failed call left nothing behind");
    armed.store(false, Relaxed);
    b.extend(&spec(0.8, 20)).unwrap();
    let (clean, _) = engine_with(8192, 64);
    let mut r = clean
        .session(2, 0, Budget::unlimited())
        .prefill(PROMPT)
        .unwrap();
    r.extend(&spec(0.8, 20)).unwrap();
    assert_eq!(b.text(), r.text());
    assert_eq!(b.logprobs(), r.logprobs());
}

#[test]
fn a_failed_append_leaves_the_branch_and_its_sequence_in_step() {
    let engine = faulty(poisoned(0, MockFault::Decode));
    let s = engine.session(2, 0, Budget::unlimited());
    let mut b = s.prefill(PROMPT).unwrap();
    let e = b.append_tokens(vec![65, POISON, 66], true).unwrap_err();
    assert!(matches!(e, EngineError::Decode { .. }), "{e:?}");
    assert!(b.tokens().is_empty());
    // The poisoned tokens are gone from the sequence too: appending and generating work.
    let lps = b.append_tokens(tokens("x = "), true).unwrap();
    assert!(lps.iter().all(|l| l.is_finite()), "{lps:?}");
    b.extend(&spec(0.8, 5)).unwrap();
    assert!(b.text().starts_with("x = "));
}

/// The mock, except that cutting a sequence back fails while `fail` is set.
struct CutFails {
    inner: MockBackend,
    fail: Arc<AtomicBool>,
}

impl Backend for CutFails {
    fn info(&self) -> &BackendInfo {
        self.inner.info()
    }
    fn decode(&mut self, batch: &[BatchToken], on_row: &mut OnRow<'_>) -> Result<()> {
        self.inner.decode(batch, on_row)
    }
    fn copy_seq(&mut self, src: i32, dst: i32, len: u32) -> Result<()> {
        self.inner.copy_seq(src, dst, len)
    }
    fn truncate_seq(&mut self, seq: i32, from: u32) -> Result<()> {
        if from > 0 && self.fail.load(Relaxed) {
            return Err(EngineError::kv("the test says no"));
        }
        self.inner.truncate_seq(seq, from)
    }
    fn tokenize(&self, text: &str, special: bool, bos: bool) -> Result<Vec<i32>> {
        self.inner.tokenize(text, special, bos)
    }
    fn piece(&self, token: i32) -> Vec<u8> {
        self.inner.piece(token)
    }
    fn is_eog(&self, token: i32) -> bool {
        self.inner.is_eog(token)
    }
    fn apply_template(&self, format: &PromptFormat, messages: &[ChatMessage]) -> Result<String> {
        self.inner.apply_template(format, messages)
    }
}

#[test]
fn a_failed_truncate_changes_nothing_and_leaks_no_cells() {
    let fail = Arc::new(AtomicBool::new(false));
    let backend = CutFails {
        inner: MockBackend::new(MockConfig::default()),
        fail: fail.clone(),
    };
    let engine = Engine::new(Box::new(backend)).unwrap();
    let s = engine.session(0, 0, Budget::unlimited());
    let root = s.prefill(PROMPT).unwrap();
    let mut b = root.fork(1).unwrap().pop().unwrap();
    b.extend(&no_eog(10)).unwrap();
    engine.settle([&mut b]).unwrap();
    let first = b.tokens()[..3].to_vec();
    let used = engine.capacity().unwrap().used;
    fail.store(true, Relaxed);
    assert!(b.truncate(3).is_err());
    assert_eq!(b.tokens().len(), 10);
    assert_eq!(engine.capacity().unwrap().used, used);
    fail.store(false, Relaxed);
    b.truncate(3).unwrap();
    let mut g = spec(0.0, 7);
    g.ignore_eog = true;
    b.extend(&g).unwrap();
    assert_eq!(b.tokens().len(), 10);
    let mut r = root.fork(1).unwrap().pop().unwrap();
    r.append_tokens(first, false).unwrap();
    r.extend(&g).unwrap();
    assert_eq!(b.text(), r.text());
    drop((b, r, root));
    engine.tokenize("", false, false).unwrap(); // flush the releases
    assert_eq!(engine.capacity().unwrap().used, 0, "no cell leaked");
}

#[test]
fn a_model_whose_sequences_cannot_be_cut_is_refused() {
    let e = Engine::mock(MockConfig {
        recurrent: true,
        ..Default::default()
    })
    .unwrap_err()
    .to_string();
    assert!(e.contains("recurrent"), "{e}");
}

#[test]
fn extend_capped_rejects_a_branch_of_another_engine() {
    let (a, _) = engine_with(4096, 4);
    let (b, _) = engine_with(4096, 4);
    let mut x = a
        .session(0, 0, Budget::unlimited())
        .prefill(PROMPT)
        .unwrap();
    let sb = b.session(0, 0, Budget::unlimited());
    let mut y = sb.prefill(PROMPT).unwrap(); // b's sequence 0, as x is a's
    let e = sb.extend_capped([(&mut x, 5)], &spec(0.8, 5)).unwrap_err();
    assert!(e.to_string().contains("another engine"), "{e}");
    let e = sb.extend([&mut x], &spec(0.8, 5)).unwrap_err();
    assert!(e.to_string().contains("another engine"), "{e}");
    assert!(x.tokens().is_empty() && y.tokens().is_empty());
    y.extend(&spec(0.8, 5)).unwrap();
}

#[test]
fn an_ended_branch_keeps_its_finish_and_is_never_sampled_past_its_end() {
    let model = ChoiceModel::new(&[("ab", 1.0), ("xyzxyzxyz", 1.0)]);
    let engine = Engine::mock(MockConfig {
        model: Arc::new(model),
        ..Default::default()
    })
    .unwrap();
    let s = engine.session(0, 0, Budget::unlimited());
    let root = s.prefill(PROMPT).unwrap();
    let mut bs = root.fork(2).unwrap();
    let items = bs.iter_mut().zip([tokens("a"), tokens("x")]);
    engine.append_all(items, false).unwrap();
    // Samples of unequal lengths, in chunks of 4 as ST-BoN draws them.
    let chunk = spec(0.0, 4);
    s.extend(bs.iter_mut(), &chunk).unwrap();
    assert_eq!(bs[0].finish(), Some(&Finish::Eog));
    assert_eq!(bs[1].finish(), Some(&Finish::MaxTokens));
    let ended = bs[0].tokens().to_vec();
    // ST-BoN's next call: cap 0 for ended samples.
    let items = bs.iter_mut().map(|b| {
        let cap = if b.finish() == Some(&Finish::Eog) {
            0
        } else {
            4
        };
        (b, cap)
    });
    s.extend_capped(items, &chunk).unwrap();
    assert_eq!(bs[0].finish(), Some(&Finish::Eog), "cap 0 keeps the finish");
    // Even a cap > 0 does not sample past the end of generation.
    s.extend_capped(bs.iter_mut().map(|b| (b, 10)), &spec(0.0, 10))
        .unwrap();
    assert_eq!(bs[0].finish(), Some(&Finish::Eog));
    assert_eq!(bs[0].tokens(), &ended[..]);
    assert_eq!(bs[0].text(), "ab");
    assert_eq!(bs[0].extend(&chunk).unwrap(), &Finish::Eog);
    assert_eq!(bs[0].tokens(), &ended[..]);
    assert_eq!(bs[1].finish(), Some(&Finish::Eog));
    assert_eq!(bs[1].text(), "xyzxyzxyz");
}
