//! The events of a lesson's run, by kind: what the lesson tests look at.

use bpflab::run::LessonResult;
use bpflab_protocol::Event;

/// The reason the lesson gave for its outcome.
pub fn reason(lesson: &LessonResult) -> &str {
    lesson.outcome.reason()
}

/// The texts of a lesson's events of one kind, picked by `text_of`.
pub fn texts(lesson: &LessonResult, text_of: fn(&Event) -> Option<&str>) -> Vec<&str> {
    lesson.events.iter().filter_map(text_of).collect()
}

/// How many trace lines contain `needle`.
pub fn trace_lines(lesson: &LessonResult, needle: &str) -> usize {
    let traces = texts(lesson, |e| match e {
        Event::Trace { line, .. } => Some(line.as_str()),
        _ => None,
    });
    traces.iter().filter(|l| l.contains(needle)).count()
}

/// The lines the lesson printed.
pub fn outputs(lesson: &LessonResult) -> Vec<&str> {
    texts(lesson, |e| match e {
        Event::Output { line, .. } => Some(line.as_str()),
        _ => None,
    })
}

/// The notes the lesson gave.
pub fn notes(lesson: &LessonResult) -> Vec<&str> {
    texts(lesson, |e| match e {
        Event::Note { text, .. } => Some(text.as_str()),
        _ => None,
    })
}
