//! A proxy-wasm HTTP filter that does nothing: every callback takes the SDK's default
//! (`Action::Continue`). Built the same way as tokengate (release, LTO, wasm32-wasip1), so the
//! difference between the two is the work tokengate does, not the price of being wasm.

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::ContextType;

struct NoopRoot;
struct NoopRequest;

impl Context for NoopRoot {}
impl Context for NoopRequest {}
impl HttpContext for NoopRequest {}

impl RootContext for NoopRoot {
    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(NoopRequest))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

proxy_wasm::main! {{
    proxy_wasm::set_root_context(|_context_id| Box::new(NoopRoot));
}}
