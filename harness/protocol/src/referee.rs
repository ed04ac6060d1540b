//! The order events must come in, checked on the host.
//!
//! The agent sends, for one boot: `Ready`; for each planned lesson in turn `LessonStart`,
//! the lesson's notes, output and trace lines, `LessonEnd`; `ShellStart` with `--shell`;
//! then `Done`. An event out of that order did not come from the agent as written: it was
//! forged (a lesson runs inside the agent and can open the event port itself) or the
//! guest is broken. Either way it must not change a result, and the user must hear of it.
//!
//! A forged result can only arrive before or after the agent's own, so a lesson that
//! reports more than one result counts as failed, whichever came first. And a lesson's
//! result is held back until the agent has moved on (next lesson, shell, done, or the
//! guest is gone), so a forged pass is never shown as one.

use std::fmt;

use crate::{Event, Outcome};

/// Takes the guest's events in arrival order and decides what counts.
#[derive(Debug)]
pub struct Referee {
    planned: Vec<u32>,
    /// How many of the planned lessons have started.
    started: usize,
    open: Option<u32>,
    ended: Vec<u32>,
    /// The latest lesson result, not shown yet.
    held: Option<Event>,
    ready: bool,
    done: bool,
}

/// What the referee made of an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ruling {
    /// It counts: show it and take it into the results.
    Accept(Event),
    /// It broke the protocol: it does not count, and the user is told.
    Reject(Violation),
}

/// An event the protocol does not allow where it came.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Violation {
    /// A second `Ready`, or one after the lessons began.
    ReadyAgain,
    /// A lesson started that is not the next one in the plan.
    StartOutOfPlan {
        /// The lesson that claimed to start.
        lesson: u32,
        /// The one the plan has next, if any.
        expected: Option<u32>,
    },
    /// A lesson started while another had not ended.
    StartWhileOpen {
        /// The lesson that claimed to start.
        lesson: u32,
        /// The one still running.
        open: u32,
    },
    /// A result for a lesson that is not running.
    EndWithoutStart {
        /// The lesson the result was for.
        lesson: u32,
    },
    /// A second result for a lesson: which one is real cannot be known, so it failed.
    EndedTwice {
        /// The lesson.
        lesson: u32,
    },
    /// Anything after `Done`.
    AfterDone(Box<Event>),
}

impl Violation {
    /// The lesson whose result this makes untrustworthy: it counts as failed.
    pub fn contested_lesson(&self) -> Option<u32> {
        match self {
            Violation::EndedTwice { lesson } => Some(*lesson),
            Violation::AfterDone(event) => match **event {
                Event::LessonEnd { lesson, .. } => Some(lesson),
                _ => None,
            },
            _ => None,
        }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Violation::ReadyAgain => write!(f, "a second `ready` event, after the guest was up"),
            Violation::StartOutOfPlan {
                lesson,
                expected: Some(next),
            } => write!(
                f,
                "lesson {lesson} claimed to start, but lesson {next} is next"
            ),
            Violation::StartOutOfPlan {
                lesson,
                expected: None,
            } => write!(
                f,
                "lesson {lesson} claimed to start after every planned lesson had"
            ),
            Violation::StartWhileOpen { lesson, open } => write!(
                f,
                "lesson {lesson} claimed to start while lesson {open} was still running"
            ),
            Violation::EndWithoutStart { lesson } => {
                write!(f, "a result for lesson {lesson}, which was not running")
            }
            Violation::EndedTwice { lesson } => write!(
                f,
                "lesson {lesson} reported a second result; it counts as failed"
            ),
            Violation::AfterDone(event) => match event.as_ref() {
                Event::LessonEnd { lesson, .. } => write!(
                    f,
                    "a result for lesson {lesson} after the guest said it was done; \
                     lesson {lesson} counts as failed"
                ),
                other => write!(
                    f,
                    "a `{}` event after the guest said it was done",
                    kind(other)
                ),
            },
        }
    }
}

/// The event's name on the wire (`lesson_end`).
fn kind(event: &Event) -> String {
    serde_json::to_value(event)
        .ok()
        .and_then(|v| v.get("event")?.as_str().map(String::from))
        .unwrap_or_default()
}

impl Referee {
    /// A referee for a boot that runs `planned`, in that order.
    pub fn new(planned: impl IntoIterator<Item = u32>) -> Referee {
        Referee {
            planned: planned.into_iter().collect(),
            started: 0,
            open: None,
            ended: Vec::new(),
            held: None,
            ready: false,
            done: false,
        }
    }

    /// Takes the next event; returns what is decided now, in order (a result held back
    /// earlier may come out with it).
    pub fn take(&mut self, event: Event) -> Vec<Ruling> {
        if self.done {
            return vec![Ruling::Reject(Violation::AfterDone(Box::new(event)))];
        }
        match event {
            Event::Ready { .. } if self.ready || self.started > 0 => {
                vec![Ruling::Reject(Violation::ReadyAgain)]
            }
            Event::Ready { .. } => {
                self.ready = true;
                vec![Ruling::Accept(event)]
            }
            Event::LessonStart { lesson } => match self.check_start(lesson) {
                Err(violation) => vec![Ruling::Reject(violation)],
                Ok(()) => {
                    self.started += 1;
                    self.open = Some(lesson);
                    self.release_with(event)
                }
            },
            Event::LessonEnd { lesson, .. } => self.take_end(lesson, event),
            Event::ShellStart => self.release_with(event),
            Event::Done => {
                self.done = true;
                self.release_with(event)
            }
            Event::Features { .. }
            | Event::Note { .. }
            | Event::Output { .. }
            | Event::Trace { .. }
            | Event::AgentError { .. } => vec![Ruling::Accept(event)],
        }
    }

    /// The guest is gone: a result still held back is final.
    pub fn finish(&mut self) -> Vec<Ruling> {
        self.held.take().map(Ruling::Accept).into_iter().collect()
    }

    fn check_start(&self, lesson: u32) -> Result<(), Violation> {
        if let Some(open) = self.open {
            return Err(Violation::StartWhileOpen { lesson, open });
        }
        let expected = self.planned.get(self.started).copied();
        match expected == Some(lesson) {
            true => Ok(()),
            false => Err(Violation::StartOutOfPlan { lesson, expected }),
        }
    }

    fn take_end(&mut self, lesson: u32, event: Event) -> Vec<Ruling> {
        if self.ended.contains(&lesson) {
            let violation = Violation::EndedTwice { lesson };
            if let Some(Event::LessonEnd {
                lesson: held,
                outcome,
                ..
            }) = &mut self.held
            {
                if *held == lesson {
                    *outcome = Outcome::Failed(violation.to_string());
                }
            }
            return vec![Ruling::Reject(violation)];
        }
        if self.open != Some(lesson) {
            return vec![Ruling::Reject(Violation::EndWithoutStart { lesson })];
        }
        self.open = None;
        self.ended.push(lesson);
        let earlier = self.finish();
        self.held = Some(event);
        earlier
    }

    /// The held result, now final, then `event`.
    fn release_with(&mut self, event: Event) -> Vec<Ruling> {
        let mut rulings = self.finish();
        rulings.push(Ruling::Accept(event));
        rulings
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ready() -> Event {
        Event::Ready {
            kernel: "6.1.0".into(),
            machine: "x86_64".into(),
            boot_ms: 1,
        }
    }

    fn start(lesson: u32) -> Event {
        Event::LessonStart { lesson }
    }

    fn end(lesson: u32, outcome: Outcome) -> Event {
        Event::LessonEnd {
            lesson,
            outcome,
            elapsed_ms: 1,
        }
    }

    fn pass() -> Outcome {
        Outcome::Passed("ok".into())
    }

    fn fail() -> Outcome {
        Outcome::Failed("verifier said no".into())
    }

    /// Feeds `events` and returns every ruling, the final ones included.
    fn rule(planned: &[u32], events: Vec<Event>) -> Vec<Ruling> {
        let mut referee = Referee::new(planned.iter().copied());
        let mut rulings: Vec<Ruling> = events.into_iter().flat_map(|e| referee.take(e)).collect();
        rulings.extend(referee.finish());
        rulings
    }

    fn accepted(rulings: &[Ruling]) -> Vec<Event> {
        rulings
            .iter()
            .filter_map(|r| match r {
                Ruling::Accept(e) => Some(e.clone()),
                Ruling::Reject(_) => None,
            })
            .collect()
    }

    fn violations(rulings: &[Ruling]) -> Vec<Violation> {
        rulings
            .iter()
            .filter_map(|r| match r {
                Ruling::Reject(v) => Some(v.clone()),
                Ruling::Accept(_) => None,
            })
            .collect()
    }

    #[test]
    fn the_agents_own_order_passes_untouched() {
        let trace = Event::Trace {
            lesson: 1,
            line: "hi".into(),
        };
        let events = vec![
            ready(),
            start(1),
            trace.clone(),
            end(1, pass()),
            start(90),
            end(90, fail()),
            Event::Done,
        ];
        let rulings = rule(&[1, 90], events.clone());
        assert_eq!(violations(&rulings), []);
        assert_eq!(accepted(&rulings), events);
    }

    #[test]
    fn a_result_is_held_until_the_agent_moves_on() {
        let mut referee = Referee::new([1, 2]);
        referee.take(ready());
        referee.take(start(1));
        assert_eq!(referee.take(end(1, pass())), []);
        assert_eq!(
            referee.take(start(2)),
            [Ruling::Accept(end(1, pass())), Ruling::Accept(start(2))]
        );
        referee.take(end(2, pass()));
        assert_eq!(
            referee.take(Event::ShellStart),
            [
                Ruling::Accept(end(2, pass())),
                Ruling::Accept(Event::ShellStart)
            ]
        );
    }

    #[test]
    fn a_forged_pass_before_the_real_failure_makes_the_lesson_fail() {
        let rulings = rule(
            &[95],
            vec![
                ready(),
                start(95),
                end(95, pass()),
                end(95, fail()),
                Event::Done,
            ],
        );
        assert_eq!(violations(&rulings), [Violation::EndedTwice { lesson: 95 }]);
        let ends: Vec<Event> = accepted(&rulings)
            .into_iter()
            .filter(|e| matches!(e, Event::LessonEnd { .. }))
            .collect();
        let [Event::LessonEnd { outcome, .. }] = ends.as_slice() else {
            panic!("one result for lesson 95: {ends:?}");
        };
        assert!(matches!(outcome, Outcome::Failed(r) if r.contains("second result")));
    }

    #[test]
    fn a_forged_pass_after_a_lesson_ended_does_not_count() {
        // The failing mistake lesson 90, then a later lesson claiming it passed.
        let rulings = rule(
            &[90, 95],
            vec![
                ready(),
                start(90),
                end(90, fail()),
                start(95),
                end(90, pass()),
                end(95, fail()),
                Event::Done,
            ],
        );
        let found = violations(&rulings);
        assert_eq!(found, [Violation::EndedTwice { lesson: 90 }]);
        assert_eq!(found[0].contested_lesson(), Some(90));
        assert!(accepted(&rulings).contains(&end(90, fail())));
        assert!(!accepted(&rulings).contains(&end(90, pass())));
    }

    #[test]
    fn a_result_for_a_lesson_that_is_not_running_does_not_count() {
        let rulings = rule(
            &[1, 2],
            vec![ready(), start(1), end(2, pass()), end(1, pass())],
        );
        assert_eq!(
            violations(&rulings),
            [Violation::EndWithoutStart { lesson: 2 }]
        );
        assert_eq!(violations(&rulings)[0].contested_lesson(), None);
    }

    #[test]
    fn nothing_counts_after_done() {
        let late_result = end(1, pass());
        let rulings = rule(
            &[1],
            vec![
                ready(),
                start(1),
                end(1, pass()),
                Event::Done,
                late_result.clone(),
                Event::Note {
                    lesson: 1,
                    text: "late".into(),
                },
            ],
        );
        let found = violations(&rulings);
        assert_eq!(found.len(), 2, "{found:?}");
        assert_eq!(found[0], Violation::AfterDone(Box::new(late_result)));
        assert_eq!(found[0].contested_lesson(), Some(1));
        assert!(found[1].to_string().contains("a `note` event after"));
        assert_eq!(accepted(&rulings).last(), Some(&Event::Done));
    }

    #[test]
    fn lessons_start_in_plan_order_one_at_a_time() {
        let rulings = rule(
            &[1, 2],
            vec![ready(), start(2), start(1), start(2), ready()],
        );
        assert_eq!(
            violations(&rulings),
            [
                Violation::StartOutOfPlan {
                    lesson: 2,
                    expected: Some(1)
                },
                Violation::StartWhileOpen { lesson: 2, open: 1 },
                Violation::ReadyAgain,
            ]
        );
        let rulings = rule(&[1], vec![ready(), start(1), end(1, pass()), start(1)]);
        assert_eq!(
            violations(&rulings),
            [Violation::StartOutOfPlan {
                lesson: 1,
                expected: None
            }]
        );
    }

    #[test]
    fn a_result_held_when_the_guest_vanishes_is_final() {
        let rulings = rule(&[1], vec![ready(), start(1), end(1, pass())]);
        assert_eq!(accepted(&rulings).last(), Some(&end(1, pass())));
    }
}
