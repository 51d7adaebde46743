//! A request as the engine takes it: parsed once at the edge (the connection, socket or in
//! process), its envelope checked — version, `type`, `id` — and its type one of
//! [`RequestType`], so the engine dispatches on an enum and never on a string. What fails here
//! is answered by the engine with the refusal, in order with the connection's other lines.

use codex_weave_runtime::{Envelope, ErrorCode, RawRequest, WIRE_VERSION};

use crate::refusal::Refusal;

macro_rules! request_types {
    ($($variant:ident => $name:literal,)*) => {
        /// Every request type of the socket protocol (`docs/weave/protocol.md`, Requests).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum RequestType {
            $($variant,)*
        }

        impl RequestType {
            pub const ALL: &'static [RequestType] = &[$(RequestType::$variant,)*];

            /// The type named `kind` on the wire.
            pub fn parse(kind: &str) -> Option<RequestType> {
                match kind {
                    $($name => Some(RequestType::$variant),)*
                    _ => None,
                }
            }

            /// Its name on the wire.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(RequestType::$variant => $name,)*
                }
            }
        }
    };
}

request_types! {
    SessionList => "session.list",
    SessionCreate => "session.create",
    SessionGet => "session.get",
    SessionClose => "session.close",
    SessionsStream => "sessions.stream",
    AgentList => "agent.list",
    AgentAdd => "agent.add",
    AgentRemove => "agent.remove",
    AgentUpdate => "agent.update",
    AgentOrder => "agent.order",
    AgentActivity => "agent.activity",
    MessageSend => "message.send",
    MessageAck => "message.ack",
    MessageRead => "message.read",
    MessageReceipts => "message.receipts",
    ActionSubmit => "action.submit",
    ActionResult => "action.result",
    RelaySubmit => "relay.submit",
    RelaysList => "relays.list",
    EventsHistory => "events.history",
    EventsStream => "events.stream",
    EventsSearch => "events.search",
    DeliveriesDead => "deliveries.dead",
    InboxUnread => "inbox.unread",
    BusStats => "bus.stats",
}

/// A request refused at the edge: what its answer carries.
#[derive(Debug)]
pub struct Refused {
    pub id: String,
    pub session: Option<String>,
    pub refusal: Refusal,
}

/// A checked request: its type, and its envelope with the payload as the JSON text it came in.
#[derive(Debug)]
pub struct Request {
    pub kind: RequestType,
    pub env: RawRequest,
}

impl Request {
    /// Checks `env` and names its type.
    pub fn parse(env: RawRequest) -> Result<Request, Refused> {
        let checked = check(&env).and_then(|()| {
            RequestType::parse(&env.kind).ok_or_else(|| {
                Refusal::new(
                    ErrorCode::UnknownType,
                    format!("unknown request type `{}`", env.kind),
                )
            })
        });
        match checked {
            Ok(kind) => Ok(Request { kind, env }),
            Err(refusal) => Err(Refused {
                id: env.id,
                session: env.session,
                refusal,
            }),
        }
    }
}

fn check<P>(env: &Envelope<P>) -> Result<(), Refusal> {
    if env.v != WIRE_VERSION {
        return Err(Refusal::new(
            ErrorCode::UnsupportedVersion,
            format!("protocol version {} is not supported; use v: 1", env.v),
        ));
    }
    if env.kind.is_empty() {
        return Err(Refusal::new(ErrorCode::BadRequest, "missing `type`"));
    }
    if env.id.is_empty() {
        return Err(Refusal::new(ErrorCode::BadRequest, "missing `id`"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every type round-trips its name and is documented in the protocol's table of requests;
    /// every request the table documents is a type.
    #[test]
    fn the_types_are_the_documented_requests() {
        let doc = include_str!("../../docs/weave/protocol.md");
        let table = &doc[doc.find("## Requests").unwrap()..];
        let table = &table[..table[3..].find("\n## ").unwrap()];
        let documented: Vec<&str> = table
            .lines()
            .filter_map(|l| l.strip_prefix("| `")?.split('`').next())
            .collect();
        for t in RequestType::ALL {
            assert_eq!(RequestType::parse(t.as_str()), Some(*t));
            assert!(
                documented.contains(&t.as_str()),
                "{} is not in protocol.md",
                t.as_str()
            );
        }
        for name in documented {
            assert!(
                RequestType::parse(name).is_some(),
                "{name} is documented, not served"
            );
        }
        assert_eq!(RequestType::parse("session.lists"), None);
    }

    #[test]
    fn a_bad_envelope_or_an_unknown_type_is_refused_with_its_code() {
        let raw = |v: u32, kind: &str, id: &str| {
            let mut env = Envelope::new(kind, id.to_owned(), String::new(), "a");
            env.v = v;
            env.into_raw_payload()
        };
        let code = |env| Request::parse(env).err().map(|r| r.refusal.code);
        assert_eq!(
            code(raw(2, "session.list", "1")),
            Some(ErrorCode::UnsupportedVersion)
        );
        assert_eq!(code(raw(1, "", "1")), Some(ErrorCode::BadRequest));
        assert_eq!(
            code(raw(1, "session.list", "")),
            Some(ErrorCode::BadRequest)
        );
        assert_eq!(code(raw(1, "nope", "1")), Some(ErrorCode::UnknownType));
        let ok = Request::parse(raw(1, "message.send", "1")).unwrap();
        assert_eq!(ok.kind, RequestType::MessageSend);
    }
}
