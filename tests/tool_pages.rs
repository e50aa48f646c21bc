//! tools/list pages for agents that see more than one page of tools.

use std::path::PathBuf;
use std::sync::Arc;

use flaregate::catalog::load_sources;
use flaregate::policy::compile;
use flaregate::server::{PAGE_SIZE, ToolTable};

fn catalog(n: usize) -> String {
    let mut text = String::from(
        "[group]\nid = \"things\"\ntitle = \"Things\"\ndescription = \"Many things.\"\n",
    );
    for i in 0..n {
        text.push_str(&format!(
            "\n[[endpoint]]\ntool = \"get_thing_{i}\"\ntitle = \"Get thing {i}\"\nmethod = \"GET\"\npath = \"/accounts/{{account_id}}/things/{i}\"\naccess = \"read\"\npermission = \"Thing Read\"\nscope = \"account\"\nresult = \"object\"\ndescription = \"Thing {i}.\"\nannotations = {{ read_only = true, destructive = false, idempotent = true }}\n\n[[endpoint.param]]\nname = \"account_id\"\nin = \"path\"\ntype = \"string\"\nrequired = true\npattern = \"^[0-9a-f]{{32}}$\"\ndescription = \"The account.\"\n"
        ));
    }
    text
}

#[test]
fn large_tool_lists_come_in_pages_and_small_ones_in_one() {
    let catalog =
        Arc::new(load_sources(&[(PathBuf::from("things.toml"), catalog(250))]).expect("catalog"));
    let policy = compile(
        &[(PathBuf::from("p.toml"), "[[agent]]\nid = \"all\"\ngrants = { things = \"read\" }\n[[agent]]\nid = \"few\"\n[agent.tools]\nget_thing_3 = \"on\"\nget_thing_200 = \"on\"\n".to_string())],
        catalog.clone(),
    )
    .expect("policy");
    let table = ToolTable::new(&catalog);
    let all = policy.agent("all").expect("agent");
    let (first, next) = table.page(all, None).expect("page");
    assert_eq!((first.len(), next.as_deref()), (PAGE_SIZE, Some("100")));
    let (second, next) = table.page(all, next.as_deref()).expect("page");
    assert_eq!(
        (second[0].name.as_ref(), next.as_deref()),
        ("get_thing_100", Some("200"))
    );
    let (third, next) = table.page(all, next.as_deref()).expect("page");
    assert_eq!((third.len(), next), (50, None));
    assert!(table.page(all, Some("not-a-cursor")).is_none());

    let few = policy.agent("few").expect("agent");
    let (only, next) = table.page(few, None).expect("page");
    let names: Vec<&str> = only.iter().map(|t| t.name.as_ref()).collect();
    assert_eq!((names, next), (vec!["get_thing_3", "get_thing_200"], None));
}
