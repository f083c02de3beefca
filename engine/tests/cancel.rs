//! Cancel flags and deadlines set from another thread are honoured within a decode step:
//! during generation, during a long prefill or append, and while work waits for capacity
//! (PRM scoring: `scorers/src/prm.rs`).

use ponder_engine::mock::{MockConfig, MockCounters};
use ponder_engine::{Budget, Engine, EngineError, Finish, GenSpec, SamplingParams};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn engine(n_ctx: u32, n_batch: u32, counters: Arc<MockCounters>) -> Engine {
    Engine::mock(MockConfig {
        n_ctx,
        n_batch,
        counters,
        ..Default::default()
    })
    .unwrap()
}

/// Generation that never ends by itself.
fn endless(max_tokens: usize) -> GenSpec {
    let mut g = GenSpec::new(SamplingParams::default(), max_tokens);
    g.ignore_eog = true;
    g
}

/// Set `flag` once the backend has made `calls` decode calls; return the count then.
fn cancel_after(
    counters: &Arc<MockCounters>,
    calls: u64,
    flag: &Arc<AtomicBool>,
) -> std::thread::JoinHandle<u64> {
    let (counters, flag) = (counters.clone(), flag.clone());
    std::thread::spawn(move || {
        while counters.decode_calls.load(Relaxed) < calls {
            std::thread::sleep(Duration::from_micros(200));
        }
        flag.store(true, Relaxed);
        counters.decode_calls.load(Relaxed)
    })
}

#[test]
fn cancel_during_generation_stops_within_a_step() {
    let counters = Arc::new(MockCounters::default());
    let e = engine(1 << 16, 512, counters.clone());
    let flag = Arc::new(AtomicBool::new(false));
    let session = e.session(0, 0, Budget::unlimited().with_cancel(flag.clone()));
    let root = session.prefill("q").unwrap();
    let mut kids = root.fork(4).unwrap();
    let at = cancel_after(&counters, 20, &flag);
    session.extend(kids.iter_mut(), &endless(50_000)).unwrap();
    let at = at.join().unwrap();
    let after = counters.decode_calls.load(Relaxed);
    assert!(kids.iter().all(|b| b.finish() == Some(&Finish::Cancelled)));
    assert!(
        after <= at + 2,
        "{} decode calls after the cancel",
        after - at
    );
}

#[test]
fn a_deadline_stops_generation_on_time() {
    let e = engine(1 << 16, 512, Arc::default());
    let budget = Budget::unlimited().with_timeout(Duration::from_millis(50));
    let session = e.session(0, 0, budget);
    let mut b = session.prefill("q").unwrap();
    let t = Instant::now();
    let finish = b.extend(&endless(60_000)).unwrap().clone();
    assert_eq!(finish, Finish::Deadline);
    assert!(
        t.elapsed() < Duration::from_millis(500),
        "{:?}",
        t.elapsed()
    );
}

/// Set `flag` after `d`; return when it was set.
fn cancel_in(d: Duration, flag: &Arc<AtomicBool>) -> std::thread::JoinHandle<Instant> {
    let flag = flag.clone();
    std::thread::spawn(move || {
        std::thread::sleep(d);
        flag.store(true, Relaxed);
        Instant::now()
    })
}

/// An engine reading 8 tokens a decode that sets `flag` when it is about to read a
/// sequence's `at`-th token (from inside the decode, so exactly then); the decode calls
/// made up to that moment are stored in `calls_then`.
fn cancelling_at(at: usize, flag: &Arc<AtomicBool>) -> (Engine, Arc<MockCounters>, Arc<AtomicU64>) {
    let counters = Arc::new(MockCounters::default());
    let calls_then = Arc::new(AtomicU64::new(u64::MAX));
    let hook = {
        let (flag, counters, calls_then) = (flag.clone(), counters.clone(), calls_then.clone());
        move |ctx: &[ponder_engine::Token]| {
            if ctx.len() == at {
                flag.store(true, Relaxed);
                calls_then.store(counters.decode_calls.load(Relaxed), Relaxed);
            }
            None
        }
    };
    let e = Engine::mock(MockConfig {
        n_ctx: 1 << 16,
        n_batch: 8,
        counters: counters.clone(),
        fault: Some(Arc::new(hook)),
        ..Default::default()
    })
    .unwrap();
    (e, counters, calls_then)
}

#[test]
fn cancel_during_a_long_prefill_stops_it_within_a_step() {
    let flag = Arc::new(AtomicBool::new(false));
    // The 20,000-token prompt would take 2,500 decodes; the flag is set in the 21st.
    let (e, counters, then) = cancelling_at(164, &flag);
    let session = e.session(0, 0, Budget::unlimited().with_cancel(flag.clone()));
    let err = session.prefill(&"p".repeat(20_000)).unwrap_err();
    let (then, after) = (then.load(Relaxed), counters.decode_calls.load(Relaxed));
    assert!(matches!(err, EngineError::Cancelled), "{err:?}");
    assert_eq!(then, 20, "the flag was set during the 21st decode");
    assert!(
        after <= then + 2,
        "{} decode calls after the cancel",
        after - then
    );
    // Nothing of the prompt is kept.
    let cap = e.capacity().unwrap();
    assert_eq!(
        (cap.used, cap.reserved, cap.free_seqs),
        (0, 0, cap.n_seq_max)
    );
}

#[test]
fn cancel_during_a_long_append_undoes_it_and_keeps_the_branch() {
    let flag = Arc::new(AtomicBool::new(false));
    let (e, counters, then) = cancelling_at(200, &flag);
    let session = e.session(0, 0, Budget::unlimited().with_cancel(flag.clone()));
    let mut b = session.prefill("q").unwrap();
    let text = e.tokenize(&"a".repeat(20_000), false, false).unwrap();
    let err = b.append_tokens(text, false).unwrap_err();
    let (then, after) = (then.load(Relaxed), counters.decode_calls.load(Relaxed));
    assert!(matches!(err, EngineError::Cancelled), "{err:?}");
    assert!(
        after <= then + 2,
        "{} decode calls after the cancel",
        after - then
    );
    // The branch and the cache agree: the prompt alone, as before the append, and the
    // branch reads on from there.
    assert_eq!(b.tokens().len(), 0);
    let mut fresh = e.session(0, 0, Budget::unlimited()).prefill("q").unwrap();
    flag.store(false, Relaxed);
    let ok = e.tokenize("ok", false, false).unwrap();
    assert_eq!(
        b.append_tokens(ok.clone(), true).unwrap(),
        fresh.append_tokens(ok, true).unwrap()
    );
    drop(fresh);
    assert_eq!(e.capacity().unwrap().used, 3);
}

#[test]
fn cancel_while_waiting_for_capacity_answers_at_once() {
    let e = engine(1000, 512, Arc::default());
    let other = e.session(0, 0, Budget::unlimited());
    let _held = other.prefill(&"h".repeat(600)).unwrap();
    let flag = Arc::new(AtomicBool::new(false));
    let session = e.session(1, 0, Budget::unlimited().with_cancel(flag.clone()));
    // A prompt that waits (600 cells wanted, 400 free; the default wait is 5 s). It is
    // answered within a turn of the worker's loop (20 ms when idle); the bound below is
    // loose for loaded machines, and far under the 5 s the wait would have taken.
    let set = cancel_in(Duration::from_millis(100), &flag);
    let err = session.prefill(&"w".repeat(600)).unwrap_err();
    let late = set.join().unwrap().elapsed();
    assert!(matches!(err, EngineError::Cancelled), "{err:?}");
    assert!(
        late < Duration::from_millis(500),
        "answered {late:?} after the cancel"
    );
    // Generation that waits for room ends as cancelled, like generation that ran.
    flag.store(false, Relaxed);
    let mut b = session.prefill("q").unwrap();
    let set = cancel_in(Duration::from_millis(100), &flag);
    let finish = b.extend(&endless(500)).unwrap().clone();
    let late = set.join().unwrap().elapsed();
    assert_eq!(finish, Finish::Cancelled);
    assert!(
        late < Duration::from_millis(500),
        "answered {late:?} after the cancel"
    );
    assert_eq!(b.tokens().len(), 0);
    assert_eq!(e.capacity().unwrap().waiting, 0);
}

#[test]
fn a_deadline_passing_while_waiting_for_capacity_answers_on_time() {
    let e = engine(1000, 512, Arc::default());
    let other = e.session(0, 0, Budget::unlimited());
    let _held = other.prefill(&"h".repeat(600)).unwrap();
    let budget = Budget::unlimited().with_timeout(Duration::from_millis(100));
    let session = e.session(1, 0, budget);
    let t = Instant::now();
    let err = session.prefill(&"w".repeat(600)).unwrap_err();
    assert!(matches!(err, EngineError::DeadlinePassed), "{err:?}");
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(100) && took < Duration::from_millis(1000),
        "{took:?}"
    );
}
