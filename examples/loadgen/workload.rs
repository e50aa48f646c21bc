//! What every path in a run asks for: one read tool through the MCP servers,
//! the same GET through the plain ones.

use serde_json::{Value, json};

/// The zone loadgen reads (the sandbox's example.com).
pub const ZONE: &str = "023e105f4ecef8ad9ca31a8372d0c353";

/// The read each call makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Workload {
    /// `list_dns_records` for one zone (1.9 KB from the sandbox).
    DnsRecords,
    /// `list_zones`: the one tool the agentgateway peer's config exposes.
    Zones,
}

impl Workload {
    pub fn parse(tool: &str) -> Option<Self> {
        match tool {
            "list_dns_records" => Some(Self::DnsRecords),
            "list_zones" => Some(Self::Zones),
            _ => None,
        }
    }

    /// The MCP tool's name.
    pub fn tool(self) -> &'static str {
        match self {
            Self::DnsRecords => "list_dns_records",
            Self::Zones => "list_zones",
        }
    }

    /// The tool's arguments.
    pub fn arguments(self) -> Value {
        match self {
            Self::DnsRecords => json!({"zone_id": ZONE}),
            Self::Zones => json!({}),
        }
    }

    /// The GET it makes upstream, under the API's base URL.
    pub fn path(self) -> String {
        match self {
            Self::DnsRecords => format!("/zones/{ZONE}/dns_records"),
            Self::Zones => "/zones".to_string(),
        }
    }

    /// The capability group flaregate's bench agent is granted to read.
    pub fn group(self) -> &'static str {
        match self {
            Self::DnsRecords => "dns",
            Self::Zones => "zones",
        }
    }
}
