//! The do-nothing filter plus `count` host calls of one `kind` in on_http_request_headers.
//! The plugin configuration is `<kind> <count>`, e.g. `get_header 10`. Results are ignored:
//! only the cost of the call is of interest.

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, BufferType, ContextType, MapType, MetricType};

#[derive(Clone, Copy)]
enum Kind {
    /// get_map_value: one request header (the value is copied into wasm memory).
    GetHeader,
    /// get_map: every request header at once.
    GetHeaders,
    /// set_map_value with a value: add or replace a header.
    SetHeader,
    /// set_map_value without a value: remove a header that is not there.
    RemoveAbsentHeader,
    /// get_shared_data of a 512-byte value (about a full tokengate bucket).
    GetSharedData,
    /// set_shared_data of a 512-byte value.
    SetSharedData,
    GetCurrentTime,
    IncrementMetric,
}

impl Kind {
    fn parse(name: &str) -> Option<Kind> {
        Some(match name {
            "get_header" => Kind::GetHeader,
            "get_headers" => Kind::GetHeaders,
            "set_header" => Kind::SetHeader,
            "remove_absent_header" => Kind::RemoveAbsentHeader,
            "get_shared_data" => Kind::GetSharedData,
            "set_shared_data" => Kind::SetSharedData,
            "get_current_time" => Kind::GetCurrentTime,
            "increment_metric" => Kind::IncrementMetric,
            _ => return None,
        })
    }
}

const SHARED_KEY: &str = "hostcall-probe/value";
const SHARED_VALUE: [u8; 512] = [7; 512];

#[derive(Clone, Copy)]
struct Probe {
    kind: Kind,
    count: u32,
    metric: u32,
}

struct ProbeRoot(Option<Probe>);
struct ProbeRequest(Probe);

impl Context for ProbeRoot {}
impl Context for ProbeRequest {}

impl HttpContext for ProbeRequest {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let Probe { kind, count, metric } = self.0;
        for _ in 0..count {
            let _ = match kind {
                Kind::GetHeader => {
                    hostcalls::get_map_value(MapType::HttpRequestHeaders, "authorization").map(drop)
                }
                Kind::GetHeaders => hostcalls::get_map(MapType::HttpRequestHeaders).map(drop),
                Kind::SetHeader => {
                    hostcalls::set_map_value(MapType::HttpRequestHeaders, "x-probe", Some("1"))
                }
                Kind::RemoveAbsentHeader => {
                    hostcalls::set_map_value(MapType::HttpRequestHeaders, "x-absent", None)
                }
                Kind::GetSharedData => hostcalls::get_shared_data(SHARED_KEY).map(drop),
                Kind::SetSharedData => hostcalls::set_shared_data(SHARED_KEY, Some(&SHARED_VALUE), None),
                Kind::GetCurrentTime => hostcalls::get_current_time().map(drop),
                Kind::IncrementMetric => hostcalls::increment_metric(metric, 1),
            };
        }
        Action::Continue
    }
}

impl RootContext for ProbeRoot {
    fn on_configure(&mut self, size: usize) -> bool {
        let Ok(Some(bytes)) = hostcalls::get_buffer(BufferType::PluginConfiguration, 0, size) else {
            return false;
        };
        let text = String::from_utf8_lossy(&bytes);
        let mut words = text.split_whitespace();
        let (Some(kind), Some(Ok(count))) =
            (words.next().and_then(Kind::parse), words.next().map(str::parse))
        else {
            return false;
        };
        let Ok(metric) = hostcalls::define_metric(MetricType::Counter, "hostcall_probe") else {
            return false;
        };
        if hostcalls::set_shared_data(SHARED_KEY, Some(&SHARED_VALUE), None).is_err() {
            return false;
        }
        self.0 = Some(Probe { kind, count, metric });
        true
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(ProbeRequest(self.0?)))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

proxy_wasm::main! {{
    proxy_wasm::set_root_context(|_context_id| Box::new(ProbeRoot(None)));
}}
