//! Cancel flags and deadlines set from another thread are honoured within a decode step
//! during generation. (A wait for capacity and a long prefill do not check the flag yet.)

use ponder_engine::mock::{MockConfig, MockCounters};
use ponder_engine::{Budget, Engine, Finish, GenSpec, SamplingParams};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
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
