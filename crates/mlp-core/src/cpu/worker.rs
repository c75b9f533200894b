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
    half: Mutex<Option<Half>>,
    panic: Mutex<Option<Box<dyn Any + Send>>>,
    asleep: AtomicBool,
    quit: AtomicBool,
}

/// The caller's partner for [`Worker::join`]; dropping it ends the thread.
pub struct Worker {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Worker {
    /// A worker on a thread of its own.
    pub fn new() -> Self {
        let shared = Arc::new(Shared {
            state: AtomicU8::new(IDLE),
            half: Mutex::new(None),
            panic: Mutex::new(None),
            asleep: AtomicBool::new(false),
            quit: AtomicBool::new(false),
        });
        let theirs = Arc::clone(&shared);
        let thread = thread::Builder::new()
            .name("mlp-cpu-worker".into())
            .spawn(move || run(&theirs))
            .ok();
        Self { shared, thread }
    }

    /// Runs `first` here and `second` on the worker, and returns both results once both have
    /// run; a panic in either is resumed here after both have finished. Without a worker
    /// thread (the system refused one), both run here in turn. It takes the worker mutably so
    /// that one half at a time is ever posted to it.
    #[allow(unsafe_code)]
    pub fn join<A: Send, B: Send>(
        &mut self,
        first: impl FnOnce() -> A + Send,
        second: impl FnOnce() -> B + Send,
    ) -> (A, B) {
        let Some(thread) = &self.thread else {
            return (first(), second());
        };
        let mut second = Some(second);
        let mut second_result = None;
        let mut half = || second_result = second.take().map(|f| f());
        let half: &mut (dyn FnMut() + Send) = &mut half;
        // SAFETY: the pointer's lifetime is erased, but this function does not return or
        // unwind before the worker has set DONE after running the closure (the wait below
        // comes before any resume), so the frame it borrows outlives every use.
        let half: *mut (dyn FnMut() + Send + 'static) = unsafe { std::mem::transmute(half) };
        *lock(&self.shared.half) = Some(Half(half));
        self.shared.state.store(POSTED, SeqCst);
        if self.shared.asleep.load(SeqCst) {
            thread.thread().unpark();
        }
        let first_result = catch_unwind(AssertUnwindSafe(first));
        wait_for(|| self.shared.state.load(SeqCst) == DONE);
        self.shared.state.store(IDLE, SeqCst);
        if let Some(panic) = lock(&self.shared.panic).take() {
            resume_unwind(panic);
        }
        let first_result = first_result.unwrap_or_else(|panic| resume_unwind(panic));
        let second_result = second_result.expect("the worker ran the second half");
        (first_result, second_result)
    }
}

impl Default for Worker {
    fn default() -> Self {
        Self::new()
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

#[cfg(test)]
mod tests {
    use super::Worker;

    #[test]
    fn join_returns_both_halves_results_in_order() {
        let mut worker = Worker::new();
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
        let mut worker = Worker::new();
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
        let mut worker = Worker::new();
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
        let mut worker = Worker::new();
        std::thread::sleep(super::SPIN + super::YIELD + std::time::Duration::from_millis(20));
        assert_eq!(worker.join(|| "here", || "there"), ("here", "there"));
    }
}
