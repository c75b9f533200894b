//! How many of the pool's threads a training step uses: the count whose steps measure fastest.
//!
//! More threads cut a step finer, but each phase then waits for the slowest of more parts and
//! each part does less: a small network, a small batch or a machine of many cores can come out
//! slower on all its threads than on fewer. No model of that is right on every machine, so the
//! backend measures it: every [`CHOSEN_STEPS`] steps a trial times [`TRIAL_STEPS`] steps on each
//! count (the pool's threads, halved down to one) and the next steps run on the one whose
//! median step was shortest. Every count gives the same numbers, so the choice changes only the
//! time. (A busy machine is [`super::worker`]'s to notice, from one phase to the next.)

use std::time::Duration;

/// Steps timed on each count in a trial.
const TRIAL_STEPS: usize = 16;
/// Steps run on the chosen count before the next trial: a trial of two counts then costs at
/// most 1.6 % of the steps on the slower one.
const CHOSEN_STEPS: u32 = 2_000;

/// The thread count of the next step, chosen by timing steps on each candidate.
#[derive(Debug)]
pub(super) struct StepThreads {
    /// The counts tried, most first.
    counts: Vec<usize>,
    /// The current trial's step times, a list per count.
    times: Vec<Vec<Duration>>,
    /// The count being tried, as an index into `counts`; `None` between trials.
    trying: Option<usize>,
    chosen: usize,
    /// Steps before the next trial.
    steps_left: u32,
}

impl StepThreads {
    /// Candidates for a pool of `threads`: `threads`, half of it, and so on down to 1. The first
    /// trial starts at once.
    pub(super) fn new(threads: usize) -> Self {
        let counts: Vec<usize> =
            std::iter::successors(Some(threads.max(1)), |&n| (n > 1).then_some(n / 2)).collect();
        Self {
            times: vec![Vec::with_capacity(TRIAL_STEPS); counts.len()],
            counts,
            trying: Some(0),
            chosen: 0,
            steps_left: 0,
        }
    }

    /// The threads the next step runs on.
    pub(super) fn count(&self) -> usize {
        self.counts[self.trying.unwrap_or(self.chosen)]
    }

    /// Notes that a step on [`Self::count`] threads took `time`.
    pub(super) fn note(&mut self, time: Duration) {
        let Some(trying) = self.trying else {
            self.steps_left = self.steps_left.saturating_sub(1);
            if self.steps_left == 0 {
                self.trying = Some(0);
            }
            return;
        };
        self.times[trying].push(time);
        if self.times[trying].len() < TRIAL_STEPS {
            return;
        }
        if trying + 1 < self.counts.len() {
            self.trying = Some(trying + 1);
            return;
        }
        // The shortest median; on a tie, the most threads.
        let medians = self.times.iter_mut().map(|times| {
            times.sort_unstable();
            times[times.len() / 2]
        });
        let medians: Vec<Duration> = medians.collect();
        self.chosen = (0..medians.len()).min_by_key(|&i| medians[i]).unwrap_or(0);
        self.times.iter_mut().for_each(Vec::clear);
        self.trying = None;
        self.steps_left = CHOSEN_STEPS;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `steps` steps, each taking what `time_on(count)` says; returns the counts used.
    fn run(threads: &mut StepThreads, steps: usize, time_on: impl Fn(usize) -> u64) -> Vec<usize> {
        (0..steps)
            .map(|_| {
                let count = threads.count();
                threads.note(Duration::from_micros(time_on(count)));
                count
            })
            .collect()
    }

    #[test]
    fn the_candidates_halve_down_to_one_and_one_thread_is_all_one_gets() {
        assert_eq!(StepThreads::new(16).counts, [16, 8, 4, 2, 1]);
        assert_eq!(StepThreads::new(6).counts, [6, 3, 1]);
        let mut one = StepThreads::new(1);
        assert!(run(&mut one, 5_000, |_| 10).iter().all(|&c| c == 1));
    }

    #[test]
    fn a_trial_tries_each_count_then_the_fastest_runs_until_the_next_trial() {
        let mut threads = StepThreads::new(8);
        // Fastest on 4 threads: 8 pay for their joins, fewer do more each.
        let time_on = |count: usize| [0, 90, 60, 0, 40, 0, 0, 0, 50][count];
        let counts = run(&mut threads, 4 * TRIAL_STEPS, time_on);
        let expected: Vec<usize> = [8, 4, 2, 1]
            .iter()
            .flat_map(|&c| std::iter::repeat_n(c, TRIAL_STEPS))
            .collect();
        assert_eq!(counts, expected);
        let chosen = run(&mut threads, CHOSEN_STEPS as usize, time_on);
        assert!(chosen.iter().all(|&c| c == 4), "{:?}", &chosen[..5]);
        assert_eq!(
            threads.count(),
            8,
            "the next trial starts with every thread"
        );
    }

    #[test]
    fn one_slow_step_in_a_trial_does_not_decide_it() {
        let mut threads = StepThreads::new(2);
        let mut step = 0;
        let counts: Vec<usize> = (0..2 * TRIAL_STEPS + 1)
            .map(|_| {
                let count = threads.count();
                step += 1;
                // Two threads are faster but for one step the host took their core.
                let time = if count == 2 {
                    if step == 3 { 5_000 } else { 30 }
                } else {
                    50
                };
                threads.note(Duration::from_micros(time));
                count
            })
            .collect();
        assert_eq!(counts[2 * TRIAL_STEPS], 2);
    }
}
