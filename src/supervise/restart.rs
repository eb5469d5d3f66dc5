//! The restart policy: never, on-failure or always, with exponential backoff, giving up after
//! `max` restarts within `within`. Pure: time is passed in.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::policy::RestartPolicy;
use crate::policy::schema::Restart;

/// First backoff delay; it doubles with each restart inside the window.
pub const BASE_DELAY: Duration = Duration::from_millis(500);
/// Longest backoff delay.
pub const MAX_DELAY: Duration = Duration::from_secs(30);

/// What to do after the service exited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Do not restart: the policy says so for this exit.
    Exit,
    /// Restart after this delay.
    RestartAfter(Duration),
    /// Too many restarts within the window: give up and show "failed".
    GiveUp,
}

/// Restart bookkeeping for one supervisor.
#[derive(Debug)]
pub struct Restarter {
    policy: RestartPolicy,
    max: u32,
    within: Duration,
    recent: VecDeque<Instant>,
    /// Restarts since the supervisor started.
    pub total: u32,
}

impl Restarter {
    pub fn new(r: &Restart) -> Self {
        Self {
            policy: r.policy,
            max: r.max,
            within: r.within.0,
            recent: VecDeque::new(),
            total: 0,
        }
    }

    /// Decides after an exit at `now`; `success` is exit status 0.
    pub fn decide(&mut self, success: bool, now: Instant) -> Decision {
        let restart = match self.policy {
            RestartPolicy::Never => false,
            RestartPolicy::OnFailure => !success,
            RestartPolicy::Always => true,
        };
        if !restart {
            return Decision::Exit;
        }
        while self
            .recent
            .front()
            .is_some_and(|t| now.duration_since(*t) > self.within)
        {
            self.recent.pop_front();
        }
        if self.recent.len() >= self.max as usize {
            return Decision::GiveUp;
        }
        self.recent.push_back(now);
        self.total += 1;
        let n = u32::try_from(self.recent.len())
            .unwrap_or(u32::MAX)
            .saturating_sub(1)
            .min(16);
        Decision::RestartAfter((BASE_DELAY * 2u32.pow(n)).min(MAX_DELAY))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::HumanDuration;

    fn r(policy: RestartPolicy, max: u32, within: u64) -> Restarter {
        Restarter::new(&Restart {
            policy,
            max,
            within: HumanDuration(Duration::from_secs(within)),
        })
    }

    #[test]
    fn backoff_doubles_then_gives_up() {
        let mut x = r(RestartPolicy::OnFailure, 3, 60);
        let t = Instant::now();
        assert_eq!(
            x.decide(false, t),
            Decision::RestartAfter(Duration::from_millis(500))
        );
        assert_eq!(
            x.decide(false, t + Duration::from_secs(1)),
            Decision::RestartAfter(Duration::from_secs(1))
        );
        assert_eq!(
            x.decide(false, t + Duration::from_secs(2)),
            Decision::RestartAfter(Duration::from_secs(2))
        );
        assert_eq!(
            x.decide(false, t + Duration::from_secs(3)),
            Decision::GiveUp
        );
        assert_eq!(x.total, 3);
    }

    #[test]
    fn the_window_forgets_old_restarts() {
        let mut x = r(RestartPolicy::Always, 2, 10);
        let t = Instant::now();
        assert!(matches!(x.decide(true, t), Decision::RestartAfter(_)));
        assert!(matches!(
            x.decide(true, t + Duration::from_secs(1)),
            Decision::RestartAfter(_)
        ));
        assert_eq!(x.decide(true, t + Duration::from_secs(2)), Decision::GiveUp);
        assert_eq!(
            x.decide(true, t + Duration::from_secs(30)),
            Decision::RestartAfter(BASE_DELAY)
        );
    }

    #[test]
    fn policies() {
        let t = Instant::now();
        assert_eq!(
            r(RestartPolicy::Never, 5, 60).decide(false, t),
            Decision::Exit
        );
        assert_eq!(
            r(RestartPolicy::OnFailure, 5, 60).decide(true, t),
            Decision::Exit
        );
        assert!(matches!(
            r(RestartPolicy::Always, 5, 60).decide(true, t),
            Decision::RestartAfter(_)
        ));
        assert_eq!(
            r(RestartPolicy::OnFailure, 0, 60).decide(false, t),
            Decision::GiveUp
        );
    }
}
