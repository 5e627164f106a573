//! The three steps of an onboarding, one per function, and their registry: which step a
//! ledger key belongs to. Adding a step adds its module here, a variant of [`Known`] with its
//! name, a field of [`Steps`] and an arm of `with_step!`; nothing else reads step names.

mod approval_identity_source;
mod identity_center_instance;
pub mod project_tags;
mod web_identity_provider;

pub use approval_identity_source::ApprovalIdentitySource;
pub use identity_center_instance::IdentityCenterInstance;
pub use web_identity_provider::WebIdentityProvider;

use crate::ledger::StepKey;
use crate::step::Step;

/// Every step this version knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Known {
    Instance,
    Web,
    Approval,
}

impl Known {
    /// The step `key` belongs to, by the name it starts with; `None` when this version
    /// knows no such step.
    pub fn of(key: &StepKey) -> Option<Known> {
        let step = key.step.as_str();
        if step == IdentityCenterInstance::NAME {
            Some(Known::Instance)
        } else if step.starts_with(WebIdentityProvider::NAME) {
            Some(Known::Web)
        } else if step == ApprovalIdentitySource::NAME {
            Some(Known::Approval)
        } else {
            None
        }
    }

    /// Whether `key` is the departure mark of a step keyed further than its account (a
    /// portal's providers): a retired placeholder that stands for no resource, recorded and
    /// never announced ([`crate::engine`]'s retirement writes it).
    pub fn is_departure_mark(key: &StepKey) -> bool {
        key.step == WebIdentityProvider::NAME
    }
}

/// One of each step, as a process that runs them all (the reconciler) holds them.
pub struct Steps {
    pub instance: IdentityCenterInstance,
    pub web: WebIdentityProvider,
    /// Absent when the organization instance is not configured (the CLI without it).
    pub approval: Option<ApprovalIdentitySource>,
}

/// `with_step!(steps, key, step => body, unknown)`: `body` with `step: Option<&S>`, the
/// step of [`Steps`] that `key` belongs to, typed (`None`: known, but not configured here),
/// or `unknown` when this version knows no such step. The one dispatch on the kind of a
/// step, so that what runs a step stays generic over [`Step`].
macro_rules! with_step {
    ($steps:expr, $key:expr, $step:ident => $body:expr, $unknown:expr) => {
        match $crate::steps::Known::of($key) {
            Some($crate::steps::Known::Instance) => {
                let $step = Some(&$steps.instance);
                $body
            }
            Some($crate::steps::Known::Web) => {
                let $step = Some(&$steps.web);
                $body
            }
            Some($crate::steps::Known::Approval) => {
                let $step = $steps.approval.as_ref();
                $body
            }
            None => $unknown,
        }
    };
}
pub(crate) use with_step;
