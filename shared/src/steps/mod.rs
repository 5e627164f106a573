//! The three steps of an onboarding, one per function.

mod approval_identity_source;
mod identity_center_instance;
mod project_tags;
mod web_identity_provider;

pub use approval_identity_source::ApprovalIdentitySource;
pub use identity_center_instance::IdentityCenterInstance;
pub use web_identity_provider::WebIdentityProvider;
