//! Procedural macros for `agy-bridge`: the `#[llm_tool]` attribute.

use heck::ToUpperCamelCase;
use proc_macro::TokenStream;
use quote::{format_ident, quote};
use syn::{
    Attribute, Expr, FnArg, ItemFn, Lit, Meta, Pat, ReturnType, Type, parse_macro_input,
    spanned::Spanned,
};

/// Turns a function into an agent tool.
///
/// The function stays as it is. Next to it, a unit struct named in UpperCamelCase
/// (`fn get_weather` → `GetWeather`) implements `agy_bridge::tools::Tool`:
/// - the tool name is the function name, the description its doc comment;
/// - the parameters become a JSON schema (via `schemars`; nested structs, enums and `Option`
///   work; describe a parameter with `#[describe("...")]`);
/// - a parameter of type `ToolContext` (or `&ToolContext`) receives the call context and is
///   not part of the schema;
/// - the return type is `Result<T: Serialize, E: Display>` (an `Err` reaches the model as the
///   error message) or any `T: Serialize`;
/// - like every tool, it runs on the blocking thread pool, so that one that blocks its thread
///   cannot stall the runtime; `#[llm_tool(nonblocking)]` on an `async fn` that only awaits
///   runs it on the runtime instead, without that hand-off (`Tool::nonblocking`).
#[proc_macro_attribute]
pub fn llm_tool(attr: TokenStream, item: TokenStream) -> TokenStream {
    let nonblocking = match attr.to_string().as_str() {
        "" => false,
        "nonblocking" => true,
        _ => {
            return syn::Error::new(
                proc_macro2::Span::call_site(),
                "#[llm_tool] takes no arguments other than `nonblocking`",
            )
            .to_compile_error()
            .into();
        }
    };
    let func = parse_macro_input!(item as ItemFn);
    expand(func, nonblocking)
        .unwrap_or_else(|e| e.to_compile_error())
        .into()
}

fn expand(mut func: ItemFn, nonblocking: bool) -> syn::Result<proc_macro2::TokenStream> {
    if nonblocking && func.sig.asyncness.is_none() {
        return Err(syn::Error::new(
            func.sig.fn_token.span(),
            "#[llm_tool(nonblocking)] needs an `async fn`: a plain `fn` runs on a blocking-pool thread",
        ));
    }
    if !func.sig.generics.params.is_empty() {
        return Err(syn::Error::new(
            func.sig.generics.span(),
            "#[llm_tool] functions cannot be generic",
        ));
    }
    let fn_name = func.sig.ident.clone();
    let tool_name = fn_name.to_string();
    let struct_name = format_ident!("{}", tool_name.to_upper_camel_case());
    let vis = func.vis.clone();
    let description = doc_text(&func.attrs);
    let is_async = func.sig.asyncness.is_some();

    let mut fields = Vec::new();
    let mut call_args = Vec::new();
    for input in &mut func.sig.inputs {
        let FnArg::Typed(arg) = input else {
            return Err(syn::Error::new(
                input.span(),
                "#[llm_tool] cannot be used on methods",
            ));
        };
        let Pat::Ident(ident) = arg.pat.as_ref() else {
            return Err(syn::Error::new(
                arg.pat.span(),
                "use a plain name for tool parameters",
            ));
        };
        let name = ident.ident.clone();
        let describe = take_describe(&mut arg.attrs)?;
        match context_kind(&arg.ty) {
            Some(true) => call_args.push(quote!(&__ctx)),
            Some(false) => call_args.push(quote!(__ctx.clone())),
            None => {
                if matches!(arg.ty.as_ref(), Type::Reference(_)) {
                    return Err(syn::Error::new(
                        arg.ty.span(),
                        "tool parameters must be owned types",
                    ));
                }
                let ty = &arg.ty;
                let doc = describe.map(|d| quote!(#[schemars(description = #d)]));
                fields.push(quote!(#doc #name: #ty));
                call_args.push(quote!(__args.#name));
            }
        }
    }

    let output = match &func.sig.output {
        ReturnType::Type(_, ty) if is_result(ty) => {
            quote!(::agy_bridge::__private::result_output(__out))
        }
        _ => quote!(::agy_bridge::__private::value_output(__out)),
    };
    let run = if is_async {
        quote!(#fn_name(#(#call_args),*).await)
    } else {
        quote! {
            match ::agy_bridge::__private::tokio::task::spawn_blocking(move || #fn_name(#(#call_args),*)).await {
                Ok(out) => out,
                Err(e) if e.is_panic() => ::std::panic::resume_unwind(e.into_panic()),
                Err(e) => return Err(::agy_bridge::tools::ToolError::failed(e)),
            }
        }
    };
    let struct_doc =
        format!("The [`{tool_name}`] function as an agent tool (made by `#[llm_tool]`).");

    Ok(quote! {
        #func

        #[doc = #struct_doc]
        #[derive(Debug, Clone, Copy, Default)]
        #vis struct #struct_name;

        const _: () = {
            #[derive(::agy_bridge::__private::serde::Deserialize, ::agy_bridge::__private::schemars::JsonSchema)]
            #[serde(crate = "::agy_bridge::__private::serde")]
            #[schemars(crate = "::agy_bridge::__private::schemars")]
            #[allow(non_snake_case)]
            struct __Args { #(#fields),* }

            impl ::agy_bridge::tools::Tool for #struct_name {
                fn name(&self) -> &str {
                    #tool_name
                }
                fn description(&self) -> &str {
                    #description
                }
                fn parameters(&self) -> ::agy_bridge::__private::serde_json::Value {
                    ::agy_bridge::tools::schema_for::<__Args>()
                }
                fn nonblocking(&self) -> bool {
                    #nonblocking
                }
                fn call(
                    &self,
                    __raw: ::agy_bridge::__private::serde_json::Value,
                    __ctx: ::agy_bridge::tools::ToolContext,
                ) -> ::agy_bridge::__private::BoxFuture<
                    'static,
                    ::std::result::Result<::agy_bridge::__private::serde_json::Value, ::agy_bridge::tools::ToolError>,
                > {
                    ::std::boxed::Box::pin(async move {
                        #[allow(unused_variables)]
                        let __args: __Args = ::agy_bridge::__private::parse_args(#tool_name, __raw)?;
                        let __out = #run;
                        #output
                    })
                }
            }
        };
    })
}

/// `Some(true)` for `&ToolContext`, `Some(false)` for `ToolContext`, `None` otherwise.
fn context_kind(ty: &Type) -> Option<bool> {
    let (is_ref, inner) = match ty {
        Type::Reference(r) => (true, r.elem.as_ref()),
        other => (false, other),
    };
    match inner {
        Type::Path(p)
            if p.path
                .segments
                .last()
                .is_some_and(|s| s.ident == "ToolContext") =>
        {
            Some(is_ref)
        }
        _ => None,
    }
}

fn is_result(ty: &Type) -> bool {
    matches!(ty, Type::Path(p) if p.path.segments.last().is_some_and(|s| s.ident == "Result"))
}

fn doc_text(attrs: &[Attribute]) -> String {
    attrs
        .iter()
        .filter(|a| a.path().is_ident("doc"))
        .filter_map(|a| match &a.meta {
            Meta::NameValue(nv) => match &nv.value {
                Expr::Lit(lit) => match &lit.lit {
                    Lit::Str(s) => Some(s.value().trim().to_owned()),
                    _ => None,
                },
                _ => None,
            },
            _ => None,
        })
        .collect::<Vec<_>>()
        .join("\n")
        .trim()
        .to_owned()
}

fn take_describe(attrs: &mut Vec<Attribute>) -> syn::Result<Option<String>> {
    let mut found = None;
    let mut err = None;
    attrs.retain(|a| {
        if !a.path().is_ident("describe") {
            return true;
        }
        match a.parse_args::<syn::LitStr>() {
            Ok(s) => found = Some(s.value()),
            Err(e) => err = Some(e),
        }
        false
    });
    err.map_or(Ok(found), Err)
}
