//! How many of the pool's threads a training step uses, and how it cuts the first layer between
//! them: the plan whose steps measure fastest.
//!
//! More threads cut a step finer, but each phase then waits for the slowest of more parts and
//! each part does less: a small network, a small batch or a machine of many cores can come out
//! slower on all its threads than on fewer. Cutting layer 1 by its hidden units
//! ([`super::units`]) rather than by rows and pixels pays where the layer is wide and costs where
//! a thread's units are too few to keep its vector registers busy. No model of that is right on
//! every machine, so the backend measures it: every [`CHOSEN_STEPS`] steps a trial times
//! [`TRIAL_STEPS`] steps on each plan (the pool's threads, halved down to one, each count by
//! units where that is possible, then by rows) and the next steps run on the one whose median
//! step was shortest. Every plan gives the same numbers, so the choice changes only the time. (A
//! busy machine is [`super::worker`]'s to notice, from one phase to the next.)

use std::time::Duration;

/// Steps timed on each plan in a trial.
const TRIAL_STEPS: usize = 32;
/// Steps run on each plan in a trial before its steps are timed: a plan's first steps pay for
/// the switch (a cut by units copies W1 into blocks; the next plan finds them written back).
const WARM_UP_STEPS: usize = 4;
/// Steps run on the chosen plan before the next trial: a trial of three plans then runs at most
/// 72 of every 4,108 steps (1.8 %) on plans slower than the chosen one.
const CHOSEN_STEPS: u32 = 4_000;
/// Steps run on the first plan before the first trial: a run's first steps find the caches
/// cold and the memory of the blocks of units untouched, which would count against the plans
/// tried first.
const STEPS_BEFORE_FIRST_TRIAL: u32 = 64;

/// How a step is run: on how many threads, and whether layer 1 is cut by hidden units.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct StepPlan {
    pub(super) threads: usize,
    pub(super) by_units: bool,
}

/// The plan of the next step, chosen by timing steps on each candidate.
#[derive(Debug)]
pub(super) struct StepThreads {
    /// The plans tried, most threads first.
    plans: Vec<StepPlan>,
    /// The current trial's step times, a list per plan.
    times: Vec<Vec<Duration>>,
    /// The plan being tried, as an index into `plans`; `None` between trials.
    trying: Option<usize>,
    /// Steps of the plan being tried still to run before its steps are timed.
    warm_up_left: usize,
    chosen: usize,
    /// Steps before the next trial.
    steps_left: u32,
}

impl StepThreads {
    /// Candidates for a pool of `threads`: `threads`, half of it, and so on down to 1, each count
    /// of at least 2 first by units where `can_cut_units(count)`, then by rows. The first trial
    /// starts after [`STEPS_BEFORE_FIRST_TRIAL`] steps on the first plan.
    pub(super) fn new(threads: usize, can_cut_units: impl Fn(usize) -> bool) -> Self {
        let counts = std::iter::successors(Some(threads.max(1)), |&n| (n > 1).then_some(n / 2));
        let plans: Vec<StepPlan> = counts
            .flat_map(|threads| {
                let by_units = (threads > 1 && can_cut_units(threads)).then_some(StepPlan {
                    threads,
                    by_units: true,
                });
                let by_rows = StepPlan {
                    threads,
                    by_units: false,
                };
                by_units.into_iter().chain([by_rows])
            })
            .collect();
        Self {
            times: vec![Vec::with_capacity(TRIAL_STEPS); plans.len()],
            plans,
            trying: None,
            warm_up_left: WARM_UP_STEPS,
            chosen: 0,
            steps_left: STEPS_BEFORE_FIRST_TRIAL,
        }
    }

    /// How the next step runs.
    pub(super) fn plan(&self) -> StepPlan {
        self.plans[self.trying.unwrap_or(self.chosen)]
    }

    /// The threads the next step runs on.
    pub(super) fn count(&self) -> usize {
        self.plan().threads
    }

    /// Notes that a step on [`Self::plan`] took `time`.
    pub(super) fn note(&mut self, time: Duration) {
        let Some(trying) = self.trying else {
            self.steps_left = self.steps_left.saturating_sub(1);
            if self.steps_left == 0 {
                self.trying = Some(0);
                self.warm_up_left = WARM_UP_STEPS;
            }
            return;
        };
        if self.warm_up_left > 0 {
            self.warm_up_left -= 1;
            return;
        }
        self.times[trying].push(time);
        if self.times[trying].len() < TRIAL_STEPS {
            return;
        }
        if trying + 1 < self.plans.len() {
            self.trying = Some(trying + 1);
            self.warm_up_left = WARM_UP_STEPS;
            return;
        }
        // The shortest median; on a tie, the first plan (the most threads, by units).
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

    fn counts(threads: &StepThreads) -> Vec<usize> {
        threads.plans.iter().map(|plan| plan.threads).collect()
    }

    #[test]
    fn the_candidates_halve_down_to_one_and_one_thread_is_all_one_gets() {
        assert_eq!(counts(&StepThreads::new(16, |_| false)), [16, 8, 4, 2, 1]);
        assert_eq!(counts(&StepThreads::new(6, |_| false)), [6, 3, 1]);
        let mut one = StepThreads::new(1, |_| true);
        assert!(run(&mut one, 5_000, |_| 10).iter().all(|&c| c == 1));
    }

    #[test]
    fn each_count_that_can_cut_units_is_tried_by_units_then_by_rows() {
        let threads = StepThreads::new(4, |count| count <= 2);
        let plans: Vec<(usize, bool)> = (threads.plans.iter())
            .map(|plan| (plan.threads, plan.by_units))
            .collect();
        assert_eq!(plans, [(4, false), (2, true), (2, false), (1, false)]);
    }

    /// A new plan whose first trial is about to start.
    fn before_first_trial(threads: usize, can_cut_units: impl Fn(usize) -> bool) -> StepThreads {
        let mut threads = StepThreads::new(threads, can_cut_units);
        let first = threads.plan();
        for _ in 0..STEPS_BEFORE_FIRST_TRIAL {
            assert_eq!(
                threads.plan(),
                first,
                "the first plan until the first trial"
            );
            threads.note(Duration::from_micros(10));
        }
        threads
    }

    #[test]
    fn a_trial_tries_each_count_then_the_fastest_runs_until_the_next_trial() {
        let mut threads = before_first_trial(8, |_| false);
        // Fastest on 4 threads: 8 pay for their joins, fewer do more each.
        let time_on = |count: usize| [0, 90, 60, 0, 40, 0, 0, 0, 50][count];
        let counts = run(&mut threads, 4 * (WARM_UP_STEPS + TRIAL_STEPS), time_on);
        let expected: Vec<usize> = [8, 4, 2, 1]
            .iter()
            .flat_map(|&c| std::iter::repeat_n(c, WARM_UP_STEPS + TRIAL_STEPS))
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
        let mut threads = before_first_trial(2, |_| false);
        let mut step = 0;
        let trial = 2 * (WARM_UP_STEPS + TRIAL_STEPS);
        let counts: Vec<usize> = (0..trial + 1)
            .map(|_| {
                let count = threads.count();
                step += 1;
                // Two threads are faster but for one timed step the host took their core.
                let time = if count == 2 {
                    if step == WARM_UP_STEPS + 3 { 5_000 } else { 30 }
                } else {
                    50
                };
                threads.note(Duration::from_micros(time));
                count
            })
            .collect();
        assert_eq!(counts[trial], 2);
    }

    #[test]
    fn a_plan_s_first_steps_are_not_timed() {
        let mut threads = before_first_trial(2, |_| true);
        for _ in 0..WARM_UP_STEPS {
            threads.note(Duration::from_micros(900));
        }
        assert!(threads.times[0].is_empty());
        threads.note(Duration::from_micros(40));
        assert_eq!(threads.times[0], [Duration::from_micros(40)]);
    }

    #[test]
    fn the_cut_by_units_is_chosen_where_its_steps_are_faster() {
        let mut threads = before_first_trial(2, |_| true);
        let trial = 3 * (WARM_UP_STEPS + TRIAL_STEPS);
        for _ in 0..trial {
            let plan = threads.plan();
            let time = match (plan.threads, plan.by_units) {
                (2, true) => 40,
                (2, false) => 45,
                _ => 70,
            };
            threads.note(Duration::from_micros(time));
        }
        assert_eq!(
            threads.plan(),
            StepPlan {
                threads: 2,
                by_units: true
            }
        );
    }
}
