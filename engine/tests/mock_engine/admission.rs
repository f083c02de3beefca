//! Fair admission: a large request is not starved by a stream of small ones, and the
//! wait for capacity counts from when the engine stalls, not from when the work came.

use ponder_engine::mock::{MockBackend, MockConfig};
use ponder_engine::{
    Backend, Branch, Budget, Engine, EngineError, GenSpec, SamplingParams, WorkerOptions,
};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn engine(n_ctx: u32, opts: WorkerOptions) -> Engine {
    let cfg = MockConfig {
        n_ctx,
        ..Default::default()
    };
    Engine::spawn(
        move || Ok(Box::new(MockBackend::new(cfg)) as Box<dyn Backend>),
        opts,
    )
    .unwrap()
}

fn fair(overtake_for: Duration) -> WorkerOptions {
    WorkerOptions {
        capacity_wait: Duration::from_secs(30),
        overtake_for,
    }
}

fn gen(max: usize) -> GenSpec {
    let mut g = GenSpec::new(SamplingParams::default(), max);
    g.ignore_eog = true;
    g
}

/// A relay of small problems (300 cells each): each is let go once the next one has
/// started, or after 50 ms if none has, so while new problems may overtake, one is
/// always running and an 800-token prompt never fits. Without fair admission it was
/// starved for the test's 10 s; with it, it waits about `overtake_for`.
#[test]
fn a_large_prompt_is_not_starved_by_a_stream_of_small_problems() {
    let e = engine(1000, fair(Duration::from_millis(100)));
    let stop = Arc::new(AtomicBool::new(false));
    let solved = Arc::new(AtomicUsize::new(0));
    let (hand_tx, hand_rx) = crossbeam_channel::unbounded::<Branch>();
    let holder = std::thread::spawn(move || {
        let mut held: Option<(Instant, Branch)> = None;
        loop {
            let wait = held.as_ref().map_or(Duration::from_secs(1), |(due, _)| {
                due.saturating_duration_since(Instant::now())
            });
            match hand_rx.recv_timeout(wait) {
                // The successor has started: the predecessor goes now.
                Ok(b) => held = Some((Instant::now() + Duration::from_millis(50), b)),
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => held = None,
                Err(crossbeam_channel::RecvTimeoutError::Disconnected) => return,
            }
        }
    });
    let relay = {
        let (e, stop, solved) = (e.clone(), stop.clone(), solved.clone());
        std::thread::spawn(move || {
            let mut i = 0u64;
            while !stop.load(Relaxed) {
                let b = e
                    .session(0, i, Budget::unlimited())
                    .prefill(&"s".repeat(300))
                    .unwrap();
                let _ = hand_tx.send(b);
                solved.fetch_add(1, Relaxed);
                i += 1;
            }
        })
    };
    while solved.load(Relaxed) < 30 {
        std::thread::sleep(Duration::from_millis(5));
    }
    let (tx, rx) = crossbeam_channel::bounded(1);
    let big = {
        let e = e.clone();
        std::thread::spawn(move || {
            let s = e.session(9, 0, Budget::unlimited());
            let t = Instant::now();
            let r = s.prefill(&"b".repeat(800)).map(|_| ());
            let _ = tx.send((r, t.elapsed()));
        })
    };
    let got = rx.recv_timeout(Duration::from_secs(10));
    stop.store(true, Relaxed);
    relay.join().unwrap();
    holder.join().unwrap();
    let (r, waited) = got.expect("the large prompt was starved for 10 s");
    big.join().unwrap();
    r.unwrap();
    assert!(waited < Duration::from_secs(3), "admitted after {waited:?}");
    assert_eq!(e.capacity().unwrap().used, 0);
}

/// Problem A keeps the engine busy with short calls for 2.5 s, holding 600 of 1,000
/// cells, then holds them 100 ms more and releases. B's 600-token prompt waited all
/// along, but the engine only stalled for those 100 ms: B gets in, and is not failed
/// for having waited more than `capacity_wait` (1 s) since it came.
#[test]
fn the_capacity_wait_counts_from_when_the_engine_stalls() {
    let e = engine(
        1000,
        WorkerOptions {
            capacity_wait: Duration::from_secs(1),
            overtake_for: Duration::from_secs(1),
        },
    );
    let a = e.session(0, 0, Budget::unlimited());
    let mut held = a.prefill(&"a".repeat(580)).unwrap();
    let busy = std::thread::spawn(move || {
        let t = Instant::now();
        while t.elapsed() < Duration::from_millis(2500) {
            held.extend(&gen(20)).unwrap();
            held.truncate(0).unwrap();
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_millis(100));
        drop(held);
    });
    std::thread::sleep(Duration::from_millis(10));
    let b = e.session(1, 0, Budget::unlimited());
    let r = b.prefill(&"b".repeat(600));
    busy.join().unwrap();
    assert!(r.is_ok(), "{:?}", r.err());
}

/// Work that can never fit still fails, once the engine has stalled for `capacity_wait`
/// with nothing freeing room, with an error that says what did not fit.
#[test]
fn work_that_cannot_fit_fails_after_the_stall_wait() {
    let e = engine(
        1000,
        WorkerOptions {
            capacity_wait: Duration::from_millis(300),
            overtake_for: Duration::from_millis(50),
        },
    );
    let a = e.session(0, 0, Budget::unlimited());
    let _held = a.prefill(&"a".repeat(600)).unwrap();
    let b = e.session(1, 0, Budget::unlimited());
    let t = Instant::now();
    let err = b.prefill(&"b".repeat(600)).unwrap_err();
    let waited = t.elapsed();
    assert!(
        matches!(
            err,
            EngineError::KvCapacity {
                needed: 600,
                available: 400,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        waited >= Duration::from_millis(300) && waited < Duration::from_secs(2),
        "{waited:?}"
    );
    // The queue behind a failed request moves on: a small prompt fits at once.
    let c = e.session(2, 0, Budget::unlimited());
    c.prefill(&"c".repeat(300)).unwrap();
}
