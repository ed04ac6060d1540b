//! Folds the guest's lines, as the protocol's referee rules on them, into lesson results
//! and timings, showing each as it comes.

use std::time::Duration;

use bpflab_protocol::{Event, Feature, Outcome, Referee, Ruling, Violation};

use super::{LessonResult, Progress, Timings};
use crate::lessons::Lesson;
use crate::vm::{VmEnd, VmLine, VmReport};

/// An accepted event as the line it came in, or what was wrong with it.
pub(super) fn as_line(ruling: Ruling) -> Result<VmLine, Violation> {
    match ruling {
        Ruling::Accept(event) => Ok(VmLine::Event(event)),
        Ruling::Reject(violation) => Err(violation),
    }
}

/// Sorts the guest's events into per-lesson results as they arrive, counting only what
/// the referee accepts.
pub(super) struct Collector {
    pub(super) referee: Referee,
    pub(super) violations: Vec<Violation>,
    pub(super) results: Vec<LessonResult>,
    pub(super) release: Option<String>,
    pub(super) features: Option<Vec<Feature>>,
    pub(super) agent_error: Option<String>,
    pub(super) ready_at: Option<Duration>,
    pub(super) last_end: Option<Duration>,
}

impl Collector {
    pub(super) fn new(selected: &[(&Lesson, Vec<String>)]) -> Collector {
        Collector {
            referee: Referee::new(selected.iter().map(|(l, _)| l.number)),
            violations: Vec::new(),
            results: selected
                .iter()
                .map(|(l, _)| LessonResult {
                    number: l.number,
                    name: l.name.clone(),
                    outcome: Outcome::Failed(String::new()),
                    events: Vec::new(),
                })
                .collect(),
            release: None,
            features: None,
            agent_error: None,
            ready_at: None,
            last_end: None,
        }
    }

    /// What the referee makes of a line from the VM (console lines are not its business).
    pub(super) fn referee_line(&mut self, line: VmLine) -> Vec<Result<VmLine, Violation>> {
        match line {
            VmLine::Console(_) => vec![Ok(line)],
            VmLine::Event(event) => self.referee.take(event).into_iter().map(as_line).collect(),
        }
    }

    /// Takes what was decided into the results, and shows it.
    pub(super) fn apply(
        &mut self,
        rulings: impl IntoIterator<Item = Result<VmLine, Violation>>,
        at: Duration,
        timings: &mut Timings,
        progress: &mut dyn FnMut(Progress),
    ) {
        for ruling in rulings {
            match ruling {
                Ok(line) => {
                    self.take(&line, at, timings);
                    progress(Progress::Vm(&line));
                }
                Err(violation) => {
                    self.reject(&violation);
                    progress(Progress::Violation(&violation));
                }
            }
        }
    }

    /// A lesson whose result is contested has failed, whatever it reported.
    fn reject(&mut self, violation: &Violation) {
        let contested = violation.contested_lesson();
        if let Some(r) = self
            .results
            .iter_mut()
            .find(|r| Some(r.number) == contested)
        {
            if !matches!(r.outcome, Outcome::Failed(_)) {
                r.outcome = Outcome::Failed(violation.to_string());
            }
        }
        self.violations.push(violation.clone());
    }

    fn take(&mut self, line: &VmLine, at: Duration, timings: &mut Timings) {
        let VmLine::Event(event) = line else { return };
        match event {
            Event::Ready {
                kernel, boot_ms, ..
            } => {
                self.release = Some(kernel.clone());
                self.ready_at = Some(at);
                timings.boot = Some(at);
                timings.guest_boot = Some(Duration::from_millis(*boot_ms));
            }
            Event::AgentError { message } => self.agent_error = Some(message.clone()),
            Event::Features { present } => self.features = Some(present.clone()),
            Event::LessonEnd {
                lesson, outcome, ..
            } => {
                self.last_end = Some(at);
                if let Some(ready) = self.ready_at {
                    timings.lessons = Some(at.saturating_sub(ready));
                }
                if let Some(r) = self.results.iter_mut().find(|r| r.number == *lesson) {
                    r.outcome = outcome.clone();
                    r.events.push(event.clone());
                }
            }
            Event::Trace { lesson, .. }
            | Event::Note { lesson, .. }
            | Event::Output { lesson, .. }
            | Event::LessonStart { lesson } => {
                if matches!(event, Event::Trace { .. }) && timings.first_trace.is_none() {
                    timings.first_trace = Some(at);
                }
                if let Some(r) = self.results.iter_mut().find(|r| r.number == *lesson) {
                    r.events.push(event.clone());
                }
            }
            Event::ShellStart | Event::Done => {}
        }
    }

    /// Lessons the guest never finished get the reason the VM gave.
    pub(super) fn finish(&mut self, vm: &VmReport) -> Vec<LessonResult> {
        let why = match &vm.end {
            VmEnd::Finished => match &self.agent_error {
                Some(e) => format!("the guest agent failed: {e}"),
                None => "the guest finished without reporting this lesson".into(),
            },
            VmEnd::KernelPanic => "the guest kernel panicked".into(),
            VmEnd::TimedOut(t) => format!("the guest did not finish within {}s", t.as_secs()),
            VmEnd::ExitedEarly(why) => why.clone(),
            VmEnd::Interrupted => "interrupted".into(),
        };
        for r in &mut self.results {
            if !r
                .events
                .iter()
                .any(|e| matches!(e, Event::LessonEnd { .. }))
            {
                r.outcome = Outcome::Failed(format!("no result: {why}"));
            }
        }
        std::mem::take(&mut self.results)
    }
}
