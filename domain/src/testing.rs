//! One given/when/then harness for every aggregate's tests, in the spirit of cqrs-es's
//! `TestFramework`:
//!
//! ```text
//! given::<Cart>([created()]).when(add(1, 2)).then([added(1, 2)]);
//! given::<Cart>([owned()]).by("anonymous").when(add(1, 2)).then_error(ErrorKind::PermissionDenied);
//! given_no_events::<Order>().when(OrderCommand::Confirm).then_err_eq(OrderError::NotFound);
//! ```
//!
//! `given` folds the history with [`Aggregate::fold`]; `when` decides on that state. With an
//! actor named by `by` it first calls [`Aggregate::authorize`], as the command handler does
//! (authorize, then decide, on the same folded state); without `by` only `decide` runs.
//! Every `then*` asserts, panicking at the test's line, and returns the next [`Given`]: the
//! state with the accepted events applied (or unchanged after a refusal) and the same actor,
//! so a test can go on with another `when` or look at [`Given::state`]. Events and errors are
//! compared with `PartialEq`, which every aggregate's event and error types derive.

use crate::{Aggregate, DomainError, ErrorKind};
use std::fmt::Debug;

/// A state folded from a history, and who commands it (`None`: authorization is not checked).
#[derive(Clone)]
pub(crate) struct Given<A: Aggregate> {
    state: A,
    actor: Option<String>,
}

/// An aggregate with this history.
pub(crate) fn given<A: Aggregate>(events: impl IntoIterator<Item = A::Event>) -> Given<A> {
    let events: Vec<A::Event> = events.into_iter().collect();
    Given {
        state: A::fold(&events),
        actor: None,
    }
}

/// An aggregate whose stream is empty.
pub(crate) fn given_no_events<A: Aggregate>() -> Given<A> {
    given(Vec::new())
}

impl<A: Aggregate> Given<A> {
    /// The same state, commanded by `actor` (`user:<id>`, `admin:<id>`, `service:<name>`,
    /// `anonymous`): `when` authorizes it before deciding.
    pub(crate) fn by(&self, actor: &str) -> Self {
        Self {
            state: self.state.clone(),
            actor: Some(actor.to_owned()),
        }
    }

    /// The current state.
    pub(crate) fn state(&self) -> &A {
        &self.state
    }

    /// What the aggregate decides on `command` (authorizing the actor first, if there is one).
    pub(crate) fn when(&self, command: A::Command) -> When<A> {
        let result = match &self.actor {
            Some(actor) => self.state.authorize(actor),
            None => Ok(()),
        }
        .and_then(|()| self.state.decide(&command));
        When {
            given: self.clone(),
            result,
        }
    }
}

/// A decision, waiting for its `then`.
#[must_use = "a `when` without a `then` asserts nothing"]
pub(crate) struct When<A: Aggregate> {
    given: Given<A>,
    result: Result<Vec<A::Event>, A::Error>,
}

impl<A: Aggregate> When<A>
where
    A::Event: PartialEq + Debug,
    A::Error: PartialEq,
{
    /// The command is accepted with exactly these events (`then([])`: accepted, nothing
    /// happens).
    #[track_caller]
    pub(crate) fn then(self, expected: impl IntoIterator<Item = A::Event>) -> Given<A> {
        let (events, next) = self.accepted();
        assert_eq!(events, expected.into_iter().collect::<Vec<_>>());
        next
    }

    /// The command is accepted, whatever it records.
    #[track_caller]
    pub(crate) fn then_ok(self) -> Given<A> {
        self.accepted().1
    }

    /// The command is accepted, and `check` (which asserts what it likes) is run on its events.
    #[track_caller]
    pub(crate) fn then_events(self, check: impl FnOnce(&[A::Event])) -> Given<A> {
        let (events, next) = self.accepted();
        check(&events);
        next
    }

    /// The command is refused with exactly this error.
    #[track_caller]
    pub(crate) fn then_err_eq(self, expected: A::Error) -> Given<A> {
        let (error, next) = self.refused();
        assert_eq!(error, expected);
        next
    }

    /// The command is refused with an error of this kind.
    #[track_caller]
    pub(crate) fn then_error(self, kind: ErrorKind) -> Given<A> {
        let (error, next) = self.refused();
        assert_eq!(error.kind(), kind, "{error:?}");
        next
    }

    /// The command is refused with an error for which `accept` holds.
    #[track_caller]
    pub(crate) fn then_err(self, accept: impl FnOnce(&A::Error) -> bool) -> Given<A> {
        let (error, next) = self.refused();
        assert!(accept(&error), "unexpected error: {error:?}");
        next
    }

    /// The events, and the state they lead to; panics on a refusal.
    #[track_caller]
    fn accepted(self) -> (Vec<A::Event>, Given<A>) {
        match self.result {
            Ok(events) => {
                let state = events.iter().fold(self.given.state, A::evolve);
                let next = Given {
                    state,
                    actor: self.given.actor,
                };
                (events, next)
            }
            Err(e) => panic!("expected the command to be accepted, it was refused: {e:?}"),
        }
    }

    /// The error, and the unchanged state; panics when the command was accepted.
    #[track_caller]
    fn refused(self) -> (A::Error, Given<A>) {
        match self.result {
            Ok(events) => panic!("expected the command to be refused, it recorded {events:?}"),
            Err(e) => (e, self.given),
        }
    }
}
