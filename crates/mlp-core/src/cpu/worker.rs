//! A persistent worker thread that takes the second half of each of a step's phases, and waits
//! for the next by spinning rather than sleeping.
//!
//! A step of the seed network is about 135 µs on one core, and the fast backend joins its two
//! halves twice a step. A thread pool that puts its idle threads to sleep (rayon's does, after a
//! few rounds) must wake one for each join, and waking a sleeping thread under a hypervisor
//! costs tens of µs: on the 2-core KVM machine of issue 27 the two-thread step was slower than
//! one thread. This worker spins between the phases of a run of steps (for up to
//! [`SPIN`], then yields the core for up to [`YIELD`]) and sleeps only once nothing has come
//! for that long, between epochs. The split of the work is the caller's: the numbers are the
//! same whether the halves run here or one after the other on the caller's thread.
//!
//! On a busy machine (more runnable threads than cores) a spinning partner does harm: the half
//! it is given waits for the scheduler, and the caller spins for it. Two seed runs at once on
//! the 2 cores, two threads each, took 0.10-0.56 s an epoch against 0.080 on one thread each.
//! So the worker notes how long each half waited before it started ([`Contention`]); where
//! many of a few joins in a row waited, the caller runs both halves itself for a while, probing
//! again later, and backing off for longer each time the machine is still busy.

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// How long the worker spins for the next half before it yields the core: longer than the gap
/// between two phases of a step, however small the network.
const SPIN: Duration = Duration::from_micros(200);
/// How long it then offers the core to other threads before it sleeps.
const YIELD: Duration = Duration::from_millis(5);

const IDLE: u8 = 0;
const POSTED: u8 = 1;
const DONE: u8 = 2;

/// A half posted to the worker: a closure of the caller's stack frame, which [`Worker::join`]
/// does not leave before the worker has run it.
struct Half(*mut (dyn FnMut() + Send));

// SAFETY: the closure is Send, and the caller's frame outlives its run (see `join`).
#[allow(unsafe_code)]
unsafe impl Send for Half {}

struct Shared {
    state: AtomicU8,
    /// When the worker took the posted half.
    started: Mutex<Option<Instant>>,
    half: Mutex<Option<Half>>,
    panic: Mutex<Option<Box<dyn Any + Send>>>,
    asleep: AtomicBool,
    quit: AtomicBool,
}

/// The caller's partner for [`Worker::join`]; dropping it ends the thread.
pub struct Worker {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
    contention: Contention,
    /// Whether the last join ran its halves on two threads.
    ran_apart: bool,
}

impl Worker {
    /// A worker on a thread of its own where `threads` is 2 or more; with 1, every join runs
    /// both halves on the caller's thread.
    pub fn new(threads: usize) -> Self {
        let shared = Arc::new(Shared {
            state: AtomicU8::new(IDLE),
            started: Mutex::new(None),
            half: Mutex::new(None),
            panic: Mutex::new(None),
            asleep: AtomicBool::new(false),
            quit: AtomicBool::new(false),
        });
        let theirs = Arc::clone(&shared);
        let thread = (threads > 1)
            .then(|| {
                (thread::Builder::new().name("mlp-cpu-worker".into()))
                    .spawn(move || run(&theirs))
                    .ok()
            })
            .flatten();
        Self {
            shared,
            thread,
            contention: Contention::default(),
            ran_apart: false,
        }
    }

    /// The threads a join runs on: 2 with a worker thread, else 1.
    pub fn threads(&self) -> usize {
        1 + usize::from(self.thread.is_some())
    }

    /// Whether the last [`Worker::join`] ran its halves at once, on two threads, so that
    /// their times can be compared.
    pub fn ran_apart(&self) -> bool {
        self.ran_apart
    }

    /// Runs `first` here and `second` on the worker, and returns both results once both have
    /// run; a panic in either is resumed here after both have finished. Without a worker
    /// thread (one thread asked for, or the system refused one), or while the machine is busy
    /// ([`Contention`]), both run here in turn. It takes the worker mutably so that one half
    /// at a time is ever posted to it.
    #[allow(unsafe_code)]
    pub fn join<A: Send, B: Send>(
        &mut self,
        first: impl FnOnce() -> A + Send,
        second: impl FnOnce() -> B + Send,
    ) -> (A, B) {
        self.ran_apart = false;
        let Some(thread) = &self.thread else {
            return (first(), second());
        };
        if self.contention.run_here() {
            return (first(), second());
        }
        self.ran_apart = true;
        let mut second = Some(second);
        let mut second_result = None;
        let mut half = || second_result = second.take().map(|f| f());
        let half: &mut (dyn FnMut() + Send) = &mut half;
        // SAFETY: the pointer's lifetime is erased, but this function does not return or
        // unwind before the worker has set DONE after running the closure (the wait below
        // comes before any resume), so the frame it borrows outlives every use.
        let half: *mut (dyn FnMut() + Send + 'static) = unsafe { std::mem::transmute(half) };
        *lock(&self.shared.half) = Some(Half(half));
        let posted = Instant::now();
        self.shared.state.store(POSTED, SeqCst);
        if self.shared.asleep.load(SeqCst) {
            thread.thread().unpark();
        }
        let first_result = catch_unwind(AssertUnwindSafe(first));
        wait_for(|| self.shared.state.load(SeqCst) == DONE);
        self.shared.state.store(IDLE, SeqCst);
        if let Some(started) = lock(&self.shared.started).take() {
            self.contention
                .note(started.saturating_duration_since(posted));
        }
        if let Some(panic) = lock(&self.shared.panic).take() {
            resume_unwind(panic);
        }
        let first_result = first_result.unwrap_or_else(|panic| resume_unwind(panic));
        let second_result = second_result.expect("the worker ran the second half");
        (first_result, second_result)
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.shared.quit.store(true, SeqCst);
        if let Some(thread) = self.thread.take() {
            thread.thread().unpark();
            let _ = thread.join();
        }
    }
}

/// The worker's loop: wait for a half, run it, say it is done.
#[allow(unsafe_code)]
fn run(shared: &Shared) {
    loop {
        let mut since = Instant::now();
        while shared.state.load(SeqCst) != POSTED {
            if shared.quit.load(SeqCst) {
                return;
            }
            let waited = since.elapsed();
            if waited < SPIN {
                std::hint::spin_loop();
            } else if waited < SPIN + YIELD {
                thread::yield_now();
            } else {
                shared.asleep.store(true, SeqCst);
                if shared.state.load(SeqCst) != POSTED && !shared.quit.load(SeqCst) {
                    thread::park();
                }
                shared.asleep.store(false, SeqCst);
                since = Instant::now();
            }
        }
        let Half(half) = lock(&shared.half).take().expect("a posted half");
        *lock(&shared.started) = Some(Instant::now());
        // SAFETY: `join` keeps the closure alive until DONE is set below.
        let outcome = catch_unwind(AssertUnwindSafe(|| unsafe { (*half)() }));
        if let Err(panic) = outcome {
            *lock(&shared.panic) = Some(panic);
        }
        shared.state.store(DONE, SeqCst);
    }
}

/// Spins until `done`, then yields between looks: the caller's own half is usually the longer.
fn wait_for(done: impl Fn() -> bool) {
    let start = Instant::now();
    while !done() {
        if start.elapsed() < SPIN {
            std::hint::spin_loop();
        } else {
            thread::yield_now();
        }
    }
}

/// The mutex's value, whether or not a panic poisoned it (the worker catches its panics).
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A half that waited longer than this to start found its worker off its core: a spinning
/// worker starts one in well under a microsecond, one woken from sleep in tens.
const DELAYED: Duration = Duration::from_micros(100);
/// Joins a probe of the machine looks at, and how many of them may wait before it is busy.
const PROBE: u32 = 16;
const DELAYED_IN_PROBE: u32 = 4;
/// Joins run on one thread after a busy probe: at first, and at most after doubling.
const FIRST_BACKOFF: u32 = 1_000;
const LAST_BACKOFF: u32 = 64_000;

/// Whether the machine lets the worker run when it is given a half: from how long the halves
/// of the last few joins waited to start. A probe of [`PROBE`] joins with more than
/// [`DELAYED_IN_PROBE`] delayed ones sends the next `backoff` joins to the caller's thread
/// alone; each busy probe doubles the backoff, a quiet one resets it.
#[derive(Debug)]
struct Contention {
    joins: u32,
    delayed: u32,
    /// Joins still to run on the caller's thread.
    here: u32,
    backoff: u32,
}

impl Default for Contention {
    fn default() -> Self {
        Self {
            joins: 0,
            delayed: 0,
            here: 0,
            backoff: FIRST_BACKOFF,
        }
    }
}

impl Contention {
    /// Whether the next join runs both halves on the caller's thread.
    fn run_here(&mut self) -> bool {
        if self.here == 0 {
            return false;
        }
        self.here -= 1;
        true
    }

    /// Notes a join whose half waited `wait` to start.
    fn note(&mut self, wait: Duration) {
        self.joins += 1;
        self.delayed += u32::from(wait > DELAYED);
        if self.delayed > DELAYED_IN_PROBE {
            self.here = self.backoff;
            self.backoff = (self.backoff * 2).min(LAST_BACKOFF);
        } else if self.joins < PROBE {
            return;
        } else {
            self.backoff = FIRST_BACKOFF;
        }
        self.joins = 0;
        self.delayed = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_returns_both_halves_results_in_order() {
        let mut worker = Worker::new(2);
        let mut total = 0u64;
        for step in 0..10_000u64 {
            let (a, b) = worker.join(|| step * 2, || step * 3);
            assert_eq!((a, b), (step * 2, step * 3));
            total += a + b;
        }
        assert_eq!(total, 5 * (0..10_000u64).sum::<u64>());
    }

    #[test]
    fn the_halves_borrow_the_callers_data_mutably() {
        let mut worker = Worker::new(2);
        let mut values = vec![1u32; 1000];
        let (top, bottom) = values.split_at_mut(500);
        worker.join(
            || top.iter_mut().for_each(|v| *v += 1),
            || bottom.iter_mut().for_each(|v| *v *= 3),
        );
        assert!(values[..500].iter().all(|&v| v == 2));
        assert!(values[500..].iter().all(|&v| v == 3));
    }

    #[test]
    fn a_panic_in_either_half_reaches_the_caller_and_the_worker_goes_on() {
        let mut worker = Worker::new(2);
        for second_panics in [true, false] {
            let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                worker.join(
                    || assert!(second_panics, "first half"),
                    || assert!(!second_panics, "second half"),
                )
            }));
            assert!(caught.is_err());
        }
        assert_eq!(worker.join(|| 1, || 2), (1, 2));
    }

    #[test]
    fn a_worker_that_slept_wakes_for_the_next_half() {
        let mut worker = Worker::new(2);
        std::thread::sleep(super::SPIN + super::YIELD + std::time::Duration::from_millis(20));
        assert_eq!(worker.join(|| "here", || "there"), ("here", "there"));
    }

    #[test]
    fn a_busy_probe_sends_joins_to_the_caller_for_longer_each_time() {
        let mut contention = Contention::default();
        let (quick, slow) = (Duration::from_micros(1), Duration::from_millis(2));
        for _ in 0..10 * PROBE {
            contention.note(quick);
            assert!(!contention.run_here());
        }
        for backoff in [FIRST_BACKOFF, 2 * FIRST_BACKOFF] {
            for _ in 0..=DELAYED_IN_PROBE {
                assert!(!contention.run_here());
                contention.note(slow);
            }
            let here = std::iter::from_fn(|| Some(contention.run_here()))
                .take_while(|&here| here)
                .count();
            assert_eq!(here as u32, backoff);
        }
        for _ in 0..PROBE {
            contention.note(quick);
        }
        assert_eq!(contention.backoff, FIRST_BACKOFF);
    }

    #[test]
    fn joins_the_busy_machine_sends_to_the_caller_return_both_results() {
        let mut worker = Worker::new(2);
        worker.contention.here = 3;
        for step in 0..5 {
            assert_eq!(worker.join(|| step, || step + 1), (step, step + 1));
            assert_eq!(worker.ran_apart(), step >= 3, "join {step}");
        }
    }
}
