//! Passes the cfg values nginx-sys detected (`ngx_os`, `ngx_feature`) on to this crate, as
//! ngx's own modules do; nginx-sys exports them as DEP_NGINX_* variables.
fn main() {
    for (var, cfg) in [
        ("DEP_NGINX_OS", "ngx_os"),
        ("DEP_NGINX_FEATURES", "ngx_feature"),
    ] {
        println!("cargo::rerun-if-env-changed={var}");
        println!("cargo::rerun-if-env-changed={var}_CHECK");
        let check = std::env::var(format!("{var}_CHECK")).unwrap_or_else(|_| "any()".into());
        println!("cargo::rustc-check-cfg=cfg({cfg}, values({check}))");
        if let Ok(values) = std::env::var(var) {
            for v in values.split(',').map(str::trim).filter(|v| !v.is_empty()) {
                println!("cargo::rustc-cfg={cfg}=\"{v}\"");
            }
        }
    }
}
