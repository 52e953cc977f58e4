//! The generic `Commands` gRPC service: one implementation serves every aggregate whose
//! commands deserialize from JSON. It parses the command (serde goes through the domain's
//! checked constructors), checks it against the aggregate's [`Policy`] with the actor of the
//! call's verified credential, then hands it to the generic handler.

use crate::error::CommandError;
use crate::handler::{CommandContext, CommandHandler, CommandOutcome};
use domain::Aggregate;
use event_schemas::EventMeta;
use platform::internal_auth::{actor_of, Actor};
use platform::trace_context::CORRELATION_HEADER;
use proto::commands::commands_server::{Commands, CommandsServer};
use proto::commands::{ExecuteRequest, ExecuteResponse, Meta, StateAtRequest, StateAtResponse};
use serde::de::DeserializeOwned;
use std::sync::Arc;
use tonic::{Request, Response, Status};

/// The `Commands` service of one aggregate: parse the typed request, check it against the
/// [`Policy`], complete it with [`Prepare`] (facts only the service may establish), decide
/// and append through the one [`CommandHandler`].
pub struct GenericCommands<A: Aggregate, Z, P = AsIs> {
    handler: Arc<CommandHandler<A>>,
    policy: Z,
    prepare: P,
}

impl<A, Z> GenericCommands<A, Z>
where
    A: Aggregate,
    A::Command: DeserializeOwned,
    Z: Policy<A>,
{
    pub fn new(handler: Arc<CommandHandler<A>>, policy: Z) -> CommandsServer<Self> {
        CommandsServer::new(Self::instance(handler, policy, AsIs))
    }
}

impl<A, Z, P> GenericCommands<A, Z, P>
where
    A: Aggregate,
    Z: Policy<A, P::Request>,
    P: Prepare<A>,
{
    /// With a step that completes requests into commands before they are decided.
    pub fn with(handler: Arc<CommandHandler<A>>, policy: Z, prepare: P) -> CommandsServer<Self> {
        CommandsServer::new(Self::instance(handler, policy, prepare))
    }

    /// The service itself, for a typed gRPC front (the cart's) that shares it.
    pub fn instance(handler: Arc<CommandHandler<A>>, policy: Z, prepare: P) -> Self {
        Self {
            handler,
            policy,
            prepare,
        }
    }

    pub fn handler(&self) -> &Arc<CommandHandler<A>> {
        &self.handler
    }

    pub fn policy(&self) -> &Z {
        &self.policy
    }

    /// One request on one stream: checked by the policy, completed by the prepare step,
    /// decided and appended. A request the prepare step finds already done appends nothing
    /// and answers the stream's current version.
    pub async fn run(
        &self,
        stream_id: &str,
        request: P::Request,
        ctx: &CommandContext,
        actor: &Actor,
    ) -> Result<CommandOutcome, Status> {
        authorize(&self.policy, &self.handler, actor, stream_id, &request).await?;
        let prepared = self
            .prepare
            .prepare(&self.handler, stream_id, request, ctx, actor)
            .await?;
        Ok(match prepared {
            Some(command) => self.handler.handle(stream_id, &command, ctx).await?,
            None => CommandOutcome {
                stream_id: stream_id.to_owned(),
                version: self.handler.load(stream_id).await?.1,
            },
        })
    }
}

/// What an actor's command needs, as far as can be told before the stream is loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permit {
    Granted,
    /// Only the owner of the aggregate (or an admin, or a service) may.
    IfOwner,
}

/// Who may issue which command (or request, `R`) of an aggregate, and see its past (time
/// travel). The actor comes from the call's verified credential; a refusal is
/// `PERMISSION_DENIED`.
pub trait Policy<A: Aggregate, R = <A as Aggregate>::Command>: Send + Sync + 'static {
    fn permit(&self, actor: &Actor, request: &R) -> Result<Permit, Status>;
    /// The user who owns the aggregate, when it has one.
    fn owner(&self, _state: &A) -> Option<String> {
        None
    }
    /// May the actor see this aggregate's state at some point in the past? By default its
    /// owner, an admin or a service.
    fn may_view(&self, actor: &Actor, state: &A) -> Result<(), Status> {
        match self.owner(state) {
            Some(owner) => actor.require_owner(&owner),
            None => actor.require_admin(),
        }
    }
}

/// Checks a request against a policy: `IfOwner` loads the stream and compares.
pub async fn authorize<A: Aggregate, R, Z: Policy<A, R>>(
    policy: &Z,
    handler: &CommandHandler<A>,
    actor: &Actor,
    stream_id: &str,
    request: &R,
) -> Result<(), Status> {
    if policy.permit(actor, request)? == Permit::IfOwner
        && !(actor.is_admin() || actor.is_any_service())
    {
        let (state, _) = handler.load(stream_id).await?;
        match policy.owner(&state) {
            Some(owner) => actor.require_owner(&owner)?,
            None => return Err(Status::permission_denied("this needs the admin role")),
        }
    }
    Ok(())
}

/// Completes a request into the aggregate's command with facts the service establishes
/// itself, never taken from the client: catalogue prices, whether a reviewer bought the
/// product, the payment gateway's answer. `None`: nothing left to do (a payment already
/// authorized), so nothing is appended. The one enrichment hook of every aggregate.
pub trait Prepare<A: Aggregate>: Send + Sync + 'static {
    /// What clients send: the aggregate's command, or a request the service completes.
    type Request: DeserializeOwned + Send + Sync;

    fn prepare<'a>(
        &'a self,
        handler: &'a CommandHandler<A>,
        stream_id: &'a str,
        request: Self::Request,
        ctx: &'a CommandContext,
        actor: &'a Actor,
    ) -> impl std::future::Future<Output = Result<Option<A::Command>, CommandError>> + Send + 'a;
}

/// Commands go to the handler as parsed.
pub struct AsIs;

impl<A: Aggregate> Prepare<A> for AsIs
where
    A::Command: DeserializeOwned,
{
    type Request = A::Command;

    async fn prepare(
        &self,
        _handler: &CommandHandler<A>,
        _stream_id: &str,
        command: A::Command,
        _ctx: &CommandContext,
        _actor: &Actor,
    ) -> Result<Option<A::Command>, CommandError> {
        Ok(Some(command))
    }
}

/// The command context from request metadata and the request's meta block, with the actor
/// of the call's credential.
pub fn context_of<T>(
    request: &Request<T>,
    meta: Option<&Meta>,
) -> Result<(CommandContext, Actor), Status> {
    command_context(request, meta.map(|m| m.idempotency_key.as_str()))
}

/// The command context of any gRPC command: the correlation id from metadata (or a new
/// one), the idempotency key, and the actor of the verified credential (never a request
/// field); `UNAUTHENTICATED` without one.
pub fn command_context<T>(
    request: &Request<T>,
    idempotency_key: Option<&str>,
) -> Result<(CommandContext, Actor), Status> {
    let actor = actor_of(request)?;
    let correlation_id = request
        .metadata()
        .get(CORRELATION_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128)
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
    let ctx = CommandContext {
        idempotency_key: idempotency_key.filter(|k| !k.is_empty()).map(str::to_owned),
        meta: EventMeta {
            correlation_id,
            causation_id: None,
            actor: actor.to_string(),
        },
        creates_stream: false,
    };
    Ok((ctx, actor))
}

/// Time travel for any aggregate: its events up to the bound, folded with `evolve`, shown
/// through the domain's `view` to whom the policy lets see it.
pub async fn state_at<A: Aggregate, R, Z: Policy<A, R>>(
    handler: &CommandHandler<A>,
    policy: &Z,
    request: &Request<StateAtRequest>,
) -> Result<StateAtResponse, Status> {
    let actor = actor_of(request)?;
    let r = request.get_ref();
    let id = stream_id(&r.stream_id)?;
    let bound = TimeBound::parse(r.version, &r.at)?;
    let (state, applied) = handler.load_until(&id, |e| bound.includes(e)).await?;
    let Some(last) = applied.last() else {
        return Err(CommandError::NotFound("it did not exist then".into()).into());
    };
    // Ownership never changes: the state then says who may see it.
    policy.may_view(&actor, &state)?;
    let view = state.view().ok_or_else(|| {
        CommandError::FailedPrecondition("this aggregate's state is not shown".into())
    })?;
    Ok(StateAtResponse {
        state_json: view.to_string(),
        version: last.version,
        occurred_at: last
            .occurred_at
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    })
}

/// Where time travel stops: after a version, or after everything that happened by a time.
#[derive(Debug, Clone, Copy)]
pub enum TimeBound {
    Version(u64),
    At(chrono::DateTime<chrono::Utc>),
}

impl TimeBound {
    pub fn parse(version: u64, at: &str) -> Result<Self, CommandError> {
        if version > 0 {
            return Ok(TimeBound::Version(version));
        }
        chrono::DateTime::parse_from_rfc3339(at.trim())
            .map(|t| TimeBound::At(t.with_timezone(&chrono::Utc)))
            .map_err(|_| CommandError::InvalidArgument("give a version or an RFC 3339 time".into()))
    }

    pub fn includes(&self, e: &event_schemas::EventEnvelope) -> bool {
        match self {
            TimeBound::Version(v) => e.version <= *v,
            TimeBound::At(t) => e.occurred_at <= *t,
        }
    }
}

/// Parses a stream id (a UUID, canonical form).
pub fn stream_id(s: &str) -> Result<String, CommandError> {
    uuid::Uuid::parse_str(s.trim())
        .map(|u| u.to_string())
        .map_err(|_| CommandError::InvalidArgument(format!("malformed id: {s:?}")))
}

/// Parses a command from JSON into the domain's types.
pub fn parse_command<C: DeserializeOwned>(json: &str) -> Result<C, CommandError> {
    serde_json::from_str(json)
        .map_err(|e| CommandError::InvalidArgument(format!("invalid command: {e}")))
}

#[tonic::async_trait]
impl<A, Z, P> Commands for GenericCommands<A, Z, P>
where
    A: Aggregate,
    Z: Policy<A, P::Request>,
    P: Prepare<A>,
{
    async fn execute(
        &self,
        request: Request<ExecuteRequest>,
    ) -> Result<Response<ExecuteResponse>, Status> {
        let r = request.get_ref();
        let id = stream_id(&r.stream_id)?;
        let (ctx, actor) = context_of(&request, r.meta.as_ref())?;
        let command: P::Request = parse_command(&r.command_json)?;
        let outcome = self.run(&id, command, &ctx, &actor).await?;
        Ok(Response::new(ExecuteResponse {
            stream_id: outcome.stream_id,
            version: outcome.version,
        }))
    }

    async fn state_at(
        &self,
        request: Request<StateAtRequest>,
    ) -> Result<Response<StateAtResponse>, Status> {
        Ok(Response::new(
            state_at::<A, P::Request, Z>(&self.handler, &self.policy, &request).await?,
        ))
    }
}
