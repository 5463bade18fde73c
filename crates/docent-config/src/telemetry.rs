//! `[telemetry]`: OpenTelemetry trace export to an operator's collector (`[telemetry.otlp]`),
//! and where it goes when only the standard `OTEL_*` variables say.

use std::collections::BTreeMap;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize, Serializer};

use crate::ConfigError;

/// Telemetry sent to an operator's collector.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetryConfig {
    /// OpenTelemetry trace export over OTLP.
    #[serde(default)]
    pub otlp: OtlpConfig,
}

/// The OTLP wire protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum OtlpProtocol {
    /// Protobuf over HTTP (port 4318, `POST /v1/traces`).
    #[serde(rename = "http/protobuf")]
    HttpProtobuf,
    /// gRPC (port 4317): not built into this binary; refused by validation.
    #[serde(rename = "grpc")]
    Grpc,
}

/// OpenTelemetry trace export (`[telemetry.otlp]`). Off until an endpoint is set here or in
/// the standard `OTEL_EXPORTER_OTLP_ENDPOINT` (`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OtlpConfig {
    /// The collector's base URL (`http://127.0.0.1:4318`); spans go to `<endpoint>/v1/traces`.
    /// Unset: `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (as is), else `OTEL_EXPORTER_OTLP_ENDPOINT`
    /// (plus `/v1/traces`), else no export.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// Wire protocol: `http/protobuf`.
    #[serde(default = "default_otlp_protocol")]
    pub protocol: OtlpProtocol,
    /// Share of new traces recorded, 0.0–1.0 (a continued trace keeps its caller's decision).
    #[serde(default = "default_sample_ratio")]
    pub sample_ratio: f64,
    /// `service.name` of the spans; unset: `OTEL_SERVICE_NAME`, else `docent`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_name: Option<String>,
    /// Extra request headers (a collector's API key: secrets, never printed).
    #[serde(
        default,
        serialize_with = "redact_map",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub headers: BTreeMap<String, SecretString>,
    /// Longest one export may take.
    #[serde(default = "default_otlp_timeout", with = "humantime_serde")]
    pub timeout: Duration,
}

impl Default for OtlpConfig {
    fn default() -> Self {
        Self {
            endpoint: None,
            protocol: default_otlp_protocol(),
            sample_ratio: default_sample_ratio(),
            service_name: None,
            headers: BTreeMap::new(),
            timeout: default_otlp_timeout(),
        }
    }
}

fn default_otlp_protocol() -> OtlpProtocol {
    OtlpProtocol::HttpProtobuf
}

fn default_sample_ratio() -> f64 {
    1.0
}

fn default_otlp_timeout() -> Duration {
    Duration::from_secs(10)
}

/// Where spans go: `traces_url` of the collector, as `service_name`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtlpTarget {
    /// The full URL spans are posted to (`…/v1/traces`).
    pub traces_url: String,
    /// `service.name`.
    pub service_name: String,
}

impl OtlpConfig {
    /// Where to export, with `env` the process environment (the standard `OTEL_*` variables):
    /// `None` when export is off.
    pub fn target(&self, env: impl Fn(&str) -> Option<String>) -> Option<OtlpTarget> {
        let set = |k: &str| env(k).filter(|v| !v.trim().is_empty());
        let traces_url = match &self.endpoint {
            Some(base) => signal_url(base),
            None => set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
                .or_else(|| set("OTEL_EXPORTER_OTLP_ENDPOINT").map(|b| signal_url(&b)))?,
        };
        let service_name = self
            .service_name
            .clone()
            .or_else(|| set("OTEL_SERVICE_NAME"))
            .unwrap_or_else(|| "docent".into());
        Some(OtlpTarget {
            traces_url,
            service_name,
        })
    }

    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: String| Err(ConfigError::Invalid(m));
        if self.protocol == OtlpProtocol::Grpc {
            return bad("telemetry.otlp.protocol \"grpc\" is not built into docent; use \"http/protobuf\" (the collector's port 4318)".into());
        }
        if !(0.0..=1.0).contains(&self.sample_ratio) {
            return bad(format!(
                "telemetry.otlp.sample_ratio must be between 0.0 and 1.0, not {}",
                self.sample_ratio
            ));
        }
        if let Some(e) = &self.endpoint {
            let rest = e
                .strip_prefix("http://")
                .or_else(|| e.strip_prefix("https://"));
            if rest.is_none_or(|r| {
                r.is_empty() || r.starts_with('/') || r.contains(char::is_whitespace)
            }) {
                return bad(format!(
                    "telemetry.otlp.endpoint must be an http:// or https:// URL such as http://127.0.0.1:4318, not {e:?}"
                ));
            }
        }
        if self
            .service_name
            .as_deref()
            .is_some_and(|n| n.trim().is_empty())
        {
            return bad("telemetry.otlp.service_name must not be empty".into());
        }
        if self.timeout.is_zero() {
            return bad("telemetry.otlp.timeout must be more than zero".into());
        }
        for (name, value) in &self.headers {
            let token = !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
            if !token {
                return bad(format!(
                    "telemetry.otlp.headers: {name:?} is not a header name"
                ));
            }
            // The value is a secret: named, never shown.
            if value
                .expose_secret()
                .bytes()
                .any(|b| b.is_ascii_control() && b != b'\t')
            {
                return bad(format!(
                    "telemetry.otlp.headers.{name} holds a control character (a line break?)"
                ));
            }
        }
        Ok(())
    }
}

/// `base` with the traces path of OTLP/HTTP appended (unless it has it).
fn signal_url(base: &str) -> String {
    let base = base.trim_end_matches('/');
    if base.ends_with("/v1/traces") {
        base.to_owned()
    } else {
        format!("{base}/v1/traces")
    }
}

fn redact_map<S: Serializer>(
    value: &BTreeMap<String, SecretString>,
    s: S,
) -> Result<S::Ok, S::Error> {
    s.collect_map(value.keys().map(|k| (k, "[redacted]")))
}

#[cfg(test)]
mod tests {
    use figment::providers::Env;

    use super::*;
    use crate::Config;

    fn load(toml: &str) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(&file, toml).unwrap();
        Config::load_from(Some(&file), Env::prefixed("DOCENT_NONE__"))
    }

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |k| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
    }

    #[test]
    fn export_is_off_by_default_and_on_with_an_endpoint_here_or_in_otel_variables() {
        let off = Config::default().telemetry.otlp;
        assert_eq!(off.target(env(&[])), None);
        let t = off
            .target(env(&[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/"),
                ("OTEL_SERVICE_NAME", "docent-api"),
            ]))
            .unwrap();
        assert_eq!(t.traces_url, "http://collector:4318/v1/traces");
        assert_eq!(t.service_name, "docent-api");
        let t = off
            .target(env(&[(
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                "http://x:4318/custom",
            )]))
            .unwrap();
        assert_eq!(t.traces_url, "http://x:4318/custom");

        let c = load(
            "[telemetry.otlp]\nendpoint = \"http://127.0.0.1:4318\"\nsample_ratio = 0.25\n\
             service_name = \"docent-worker\"\n[telemetry.otlp.headers]\nx-api-key = \"s3cret\"\n",
        )
        .unwrap();
        let t = c
            .telemetry
            .otlp
            .target(env(&[("OTEL_SERVICE_NAME", "other")]))
            .unwrap();
        assert_eq!(t.traces_url, "http://127.0.0.1:4318/v1/traces");
        assert_eq!(t.service_name, "docent-worker");
        assert_eq!(c.telemetry.otlp.sample_ratio, 0.25);
        let shown = c.to_redacted_toml();
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("x-api-key"), "{shown}");
    }

    #[test]
    fn bad_telemetry_settings_are_refused_naming_the_key() {
        for (toml, key) in [
            ("sample_ratio = 1.5", "telemetry.otlp.sample_ratio"),
            ("sample_ratio = -0.1", "telemetry.otlp.sample_ratio"),
            ("endpoint = \"collector:4318\"", "telemetry.otlp.endpoint"),
            ("endpoint = \"http://\"", "telemetry.otlp.endpoint"),
            ("protocol = \"grpc\"", "telemetry.otlp.protocol"),
            ("service_name = \" \"", "telemetry.otlp.service_name"),
            ("timeout = \"0s\"", "telemetry.otlp.timeout"),
            (
                "headers = { \"bad name\" = \"v\" }",
                "telemetry.otlp.headers",
            ),
            ("headers = { auth = \"a\\nb\" }", "telemetry.otlp.headers"),
        ] {
            let err = load(&format!("[telemetry.otlp]\n{toml}\n")).unwrap_err();
            assert!(err.to_string().contains(key), "{toml}: {err}");
        }
        let err = load("[telemetry.otlp]\nprotocol = \"http/json\"\n").unwrap_err();
        assert!(err.to_string().contains("http/protobuf"), "{err}");
    }
}
