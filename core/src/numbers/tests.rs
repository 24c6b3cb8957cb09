//! Table-driven tests of the whole plan: the manual's seven example rules, canonical round trips
//! for several countries, config errors, overlay, and property tests.
//!
//! Every case goes through [`check`] or [`plan`], so the cases read as data.

use super::*;
use proptest::prelude::*;

/// A plan from a config, failing the test with the plan's own error message.
fn plan(cfg: &NumberPlanConfig) -> NumberPlan {
    match NumberPlan::compile(cfg) {
        Ok(p) => p,
        Err(e) => panic!("{e}"),
    }
}

/// A plan with one rule list, the same in every category, and no location.
fn rules_plan(rules: &[(&str, &str)]) -> NumberPlan {
    let list: Vec<RuleConfig> = rules.iter().map(|(s, r)| RuleConfig::new(*s, *r)).collect();
    plan(&NumberPlanConfig {
        location: None,
        dial: Some(list.clone()),
        incoming: Some(list.clone()),
        outgoing: Some(list),
    })
}

/// Formats `input` in `category` and compares the result.
fn check(plan: &NumberPlan, category: Category, input: &str, want: &str) {
    let got = plan.format(category, input);
    assert_eq!(got.number, want, "{category} `{input}`:\n{got}");
    assert_eq!(got.raw, input);
}

fn location(cc: &str, area: &str) -> LocationConfig {
    LocationConfig {
        country_code: Some(cc.into()),
        area_code: Some(area.into()),
        ..LocationConfig::default()
    }
}

/// The seven examples of the manual's section 7.1, each written exactly as the manual gives it,
/// with the results its "Effect" column describes. `None` means the number passes unchanged.
#[test]
fn manual_examples() {
    type Case<'a> = (&'a str, &'a str, &'a str, &'a [(&'a str, Option<&'a str>)]);
    let cases: [Case; 7] = [
        (
            "Remove the initial 0",
            "^0(.*)",
            r"\1",
            &[
                ("0891234567", Some("891234567")),
                ("00431505641", Some("0431505641")),
                ("0", Some("")),
                ("891234567", None),
                ("100", None),
            ],
        ),
        (
            "Replace the initial 80 with a 0 (to get an outside line)",
            "^80(.*)",
            r"0\1",
            &[
                ("80891234567", Some("0891234567")),
                ("80", Some("0")),
                ("0891234567", None),
                ("180", None),
            ],
        ),
        (
            "Remove a private PIN when the number starts with 50xxx",
            "^50[0-9][0-9][0-9](.*)",
            r"\1",
            &[
                ("501230891234567", Some("0891234567")),
                ("50999123", Some("123")),
                ("50123", Some("")),
                ("5012", None),
                ("0501230891", None),
            ],
        ),
        (
            "Withhold all internal phone numbers (3 digits)",
            "^[0-9][0-9][0-9]$",
            "",
            &[
                ("123", Some("")),
                ("999", Some("")),
                ("12", None),
                ("1234", None),
                ("**1", None),
            ],
        ),
        (
            "Add an initial 0 for outgoing lines to all numbers with more than 3 digits",
            "^([0-9][0-9][0-9].+)",
            r"0\1",
            &[
                ("1234", Some("01234")),
                ("0891234567", Some("00891234567")),
                ("123", None),
                ("12", None),
            ],
        ),
        (
            "Add the root base number (03012345) to all internal numbers (1 to 3 digits)",
            "^([0-9][0-9]?[0-9]?)$",
            r"03012345\1",
            &[
                ("1", Some("030123451")),
                ("12", Some("0301234512")),
                ("123", Some("03012345123")),
                ("1234", None),
                ("", None),
            ],
        ),
        (
            "Add the local area code to all numbers not beginning with 0 with at least 4 digits",
            "^([^0][0-9][0-9][0-9].*)",
            r"08151\1",
            &[
                ("1234", Some("081511234")),
                ("1234567", Some("081511234567")),
                ("0891234567", None),
                ("123", None),
            ],
        ),
    ];
    for (effect, search, replace, numbers) in cases {
        let plan = rules_plan(&[(search, replace)]);
        for (input, want) in numbers.iter() {
            for category in Category::ALL {
                let got = plan.format(category, input);
                let want_changed = want.is_some();
                let want = want.unwrap_or(input);
                assert_eq!(got.number, want, "{effect}: {category} `{input}`\n{got}");
                let hit = got
                    .matched
                    .as_ref()
                    .map(|m| (m.position, m.search.as_str()));
                let want_hit = want_changed.then_some((1, search));
                assert_eq!(hit, want_hit, "{effect}: `{input}`");
            }
        }
    }
}

/// The manual's two "add" rules for internal and local numbers as one incoming list: the first
/// hit wins, and with a location the result is made full canonical afterwards.
#[test]
fn manual_rules_as_a_list() {
    let rules = [
        ("^([0-9][0-9]?[0-9]?)$", r"03012345\1"),
        ("^([^0][0-9][0-9][0-9].*)", r"08151\1"),
    ];
    let bare = rules_plan(&rules);
    let located = plan(&NumberPlanConfig {
        location: Some(LocationConfig {
            internal_length: Some(3),
            ..location("49", "8151")
        }),
        incoming: Some(rules.iter().map(|(s, r)| RuleConfig::new(*s, *r)).collect()),
        ..NumberPlanConfig::default()
    });
    let cases = [
        (&bare, "123", "03012345123"),
        (&bare, "4567", "081514567"),
        (&bare, "0891234567", "0891234567"),
        (&located, "123", "+493012345123"),
        (&located, "sip:123@pbx", "+493012345123"),
        (&located, "4567", "+4981514567"),
        (&located, "0891234567", "+49891234567"),
        (&located, "**12", "**12"),
    ];
    for (plan, input, want) in cases {
        check(plan, Category::Incoming, input, want);
    }
}

/// Canonical numbers out and back: the application's number is dialled as the local phone
/// system would, and the same digits reported back by the phone become the canonical number.
#[test]
fn canonical_round_trips() {
    let munich = plan(&NumberPlanConfig {
        location: Some(LocationConfig {
            outside_line_prefix: Some("0".into()),
            strip_outside_line_prefix: Some(true),
            internal_length: Some(3),
            ..location("49", "89")
        }),
        ..NumberPlanConfig::default()
    });
    let vienna = plan(&NumberPlanConfig {
        location: Some(location("43", "1")),
        ..NumberPlanConfig::default()
    });
    let zurich = plan(&NumberPlanConfig {
        location: Some(LocationConfig {
            dial_area_code_locally: Some(true),
            ..location("41", "44")
        }),
        ..NumberPlanConfig::default()
    });
    let seattle = plan(&NumberPlanConfig {
        location: Some(LocationConfig {
            international_prefix: Some("011".into()),
            national_prefix: Some("1".into()),
            ..location("+1", "206")
        }),
        ..NumberPlanConfig::default()
    });
    let london = plan(&NumberPlanConfig {
        location: Some(LocationConfig {
            outside_line_prefix: Some("9".into()),
            strip_outside_line_prefix: Some(true),
            ..location("44", "020")
        }),
        ..NumberPlanConfig::default()
    });
    let rome = plan(&NumberPlanConfig {
        location: Some(LocationConfig {
            national_prefix: Some(String::new()),
            ..location("39", "")
        }),
        ..NumberPlanConfig::default()
    });
    // (plan, application's number, what is dialled, canonical number reported back)
    let cases = [
        (&munich, "+49 (89) 1234567", "01234567", "+49891234567"),
        (&munich, "+49891234567", "01234567", "+49891234567"),
        (
            &munich,
            "+49 (0)30 1234-567",
            "0030123 4567",
            "+49301234567",
        ),
        (&munich, "+43 (1) 505641", "000431505641", "+431505641"),
        (
            &munich,
            "+1 (425) 555-1212",
            "00014255551212",
            "+14255551212",
        ),
        (&vienna, "+43 (1) 505641", "505641", "+431505641"),
        (&vienna, "+43 (316) 1234", "03161234", "+433161234"),
        (&vienna, "+49 89 1234567", "0049891234567", "+49891234567"),
        (&zurich, "+41 44 668 18 00", "0446681800", "+41446681800"),
        (&zurich, "+41 (31) 123 45 67", "0311234567", "+41311234567"),
        (
            &zurich,
            "+33 1 23 45 67 89",
            "0033123456789",
            "+33123456789",
        ),
        (&seattle, "+1 (206) 555-0100", "5550100", "+12065550100"),
        (&seattle, "+1 (425) 555-1212", "14255551212", "+14255551212"),
        (
            &seattle,
            "+44 20 7946 0958",
            "011442079460958",
            "+442079460958",
        ),
        (&london, "+44 (20) 7946 0958", "979460958", "+442079460958"),
        (&london, "+44 161 496 0000", "901614960000", "+441614960000"),
        (
            &london,
            "+49 (89) 1234567",
            "90049891234567",
            "+49891234567",
        ),
        (&rome, "+39 06 1234 5678", "0612345678", "+390612345678"),
        (&rome, "+39 (333) 123 4567", "3331234567", "+393331234567"),
        (&rome, "+41 44 668 18 00", "0041446681800", "+41446681800"),
    ];
    for (plan, app, dialled, canonical) in cases {
        let dialled = dialled.replace(' ', "");
        check(plan, Category::Dial, app, &dialled);
        check(plan, Category::Incoming, &dialled, canonical);
        check(plan, Category::Outgoing, &dialled, canonical);
        check(plan, Category::Incoming, canonical, canonical);
    }
}

/// North American phone systems report ten-digit numbers without the national prefix.
#[test]
fn north_american_numbers() {
    let p = plan(&NumberPlanConfig {
        location: Some(LocationConfig {
            international_prefix: Some("011".into()),
            national_prefix: Some("1".into()),
            national_number_length: Some(10),
            internal_length: Some(4),
            ..location("1", "206")
        }),
        ..NumberPlanConfig::default()
    });
    let cases = [
        (Category::Incoming, "(425) 555-1212", "+14255551212"),
        (Category::Incoming, "1-425-555-1212", "+14255551212"),
        (Category::Incoming, "555-0100", "+12065550100"),
        (Category::Incoming, "2001", "2001"),
        (Category::Incoming, "011 44 20 7946 0958", "+442079460958"),
        (Category::Dial, "+1 (206) 555-0100", "5550100"),
        (Category::Dial, "+1 (425) 555-1212", "14255551212"),
    ];
    for (category, input, want) in cases {
        check(&p, category, input, want);
    }
}

#[test]
fn plans_can_be_shared_between_threads() {
    fn shared<T: Send + Sync + 'static>() {}
    shared::<NumberPlan>();
    shared::<Formatted>();
    shared::<NumberPlanError>();
}

/// What the location does with numbers that are not plain digits.
#[test]
fn reported_shapes() {
    let p = plan(&NumberPlanConfig {
        location: Some(LocationConfig {
            internal_length: Some(3),
            ..location("49", "89")
        }),
        ..NumberPlanConfig::default()
    });
    let cases = [
        (Category::Incoming, "0891234567", "+49891234567"),
        (Category::Incoming, "004930123", "+4930123"),
        (Category::Incoming, "089 123-45", "+498912345"),
        (Category::Incoming, "200", "200"),
        (Category::Incoming, "sip:200@pbx", "200"),
        (
            Category::Incoming,
            "sip:0891234567@pbx;transport=udp",
            "+49891234567",
        ),
        (Category::Incoming, "<tel:+49-89-1234567>", "+49891234567"),
        (Category::Incoming, "sip:alice@pbx", "sip:alice@pbx"),
        (Category::Outgoing, "**12", "**12"),
        (Category::Outgoing, "*21#", "*21#"),
        (Category::Outgoing, "", ""),
        (Category::Dial, "**12", "**12"),
        (Category::Dial, "#31#0891234", "#31#0891234"),
        (Category::Dial, "sip:200@pbx", "sip:200@pbx"),
        (Category::Dial, "0891 234567", "0891234567"),
    ];
    for (category, input, want) in cases {
        check(&p, category, input, want);
    }
}

#[test]
fn no_location_means_rules_only() {
    let p = rules_plan(&[("^x", "y")]);
    for input in ["+43 (1) 505641", "sip:200@pbx", " 089 ", "", "**12"] {
        for category in Category::ALL {
            check(&p, category, input, input);
        }
    }
    let empty = NumberPlan::default();
    check(&empty, Category::Dial, "+49 89", "+49 89");
}

#[test]
fn bad_regex_is_reported_with_category_position_and_message() {
    let cfg = NumberPlanConfig {
        incoming: Some(vec![
            RuleConfig::new("^0(.*)", r"\1"),
            RuleConfig::new("^80(.*)", r"0\1"),
            RuleConfig::new("^50[0-9](.*", r"\1"),
        ]),
        ..NumberPlanConfig::default()
    };
    let err = match NumberPlan::compile(&cfg) {
        Ok(_) => panic!("a bad regex was accepted"),
        Err(e) => e,
    };
    let [PlanProblem::Rule(problem)] = err.problems.as_slice() else {
        panic!("{err}");
    };
    assert_eq!(problem.category, Category::Incoming);
    assert_eq!(problem.position, 3);
    assert_eq!(problem.search, "^50[0-9](.*");
    let RuleProblemKind::BadRegex(regex_error) = &problem.kind else {
        panic!("{problem}");
    };
    let message = err.to_string();
    assert!(message.contains("incoming rule 3"), "{message}");
    assert!(message.contains(&regex_error.to_string()), "{message}");
    assert!(message.contains("unclosed group"), "{message}");
}

#[test]
fn every_problem_is_reported() {
    let cfg = NumberPlanConfig {
        location: Some(LocationConfig {
            country_code: Some("4x".into()),
            ..LocationConfig::default()
        }),
        dial: Some(vec![RuleConfig::new("^0", ""), RuleConfig::new("[0-9", "")]),
        incoming: Some(vec![
            RuleConfig::new("*", ""),
            RuleConfig::new("^0", ""),
            RuleConfig::new("", "x"),
        ]),
        outgoing: Some(vec![
            RuleConfig::new("^(0)", r"\2"),
            RuleConfig::new("^0", ""),
            RuleConfig::new("^0", ""),
            RuleConfig::new("(?P<", ""),
        ]),
    };
    let err = match NumberPlan::compile(&cfg) {
        Ok(_) => panic!("a bad plan was accepted"),
        Err(e) => e,
    };
    let found: Vec<String> = err
        .problems
        .iter()
        .map(|p| match p {
            PlanProblem::Rule(r) => format!("{} {}", r.category, r.position),
            PlanProblem::Location(l) => format!("location {}", l.field),
        })
        .collect();
    assert_eq!(
        found,
        [
            "location country_code",
            "dial 2",
            "incoming 1",
            "incoming 3",
            "outgoing 1",
            "outgoing 4"
        ]
    );
    let message = err.to_string();
    assert!(
        message.starts_with("number plan refused, 6 problems:"),
        "{message}"
    );
    assert_eq!(
        message.lines().count(),
        1 + 6 + extra_lines(&err),
        "{message}"
    );
}

/// Lines that regex error messages add beyond the first line of each problem.
fn extra_lines(err: &NumberPlanError) -> usize {
    err.problems
        .iter()
        .map(|p| p.to_string().lines().count() - 1)
        .sum()
}

/// The config as the host will deserialize it (JSON here; the host reads TOML into the same
/// types), overlaid per line, then compiled.
#[test]
fn overlay_then_compile() {
    let host: NumberPlanConfig = match serde_json::from_str(
        r#"{
            "location": {"country_code": "49", "area_code": "89", "internal_length": 3},
            "dial": [{"search": "^80(.*)", "replace": "0\\1", "comment": "old outside line"}],
            "incoming": [{"search": "^([0-9][0-9]?[0-9]?)$", "replace": "08912345\\1"}]
        }"#,
    ) {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    };
    let line: NumberPlanConfig =
        match serde_json::from_str(r#"{"location": {"area_code": "30"}, "incoming": []}"#) {
            Ok(c) => c,
            Err(e) => panic!("{e}"),
        };
    let host_plan = plan(&host);
    let line_plan = plan(&host.overlay(&line));
    let cases = [
        (&host_plan, Category::Dial, "80123", "0123"),
        (&line_plan, Category::Dial, "80123", "0123"),
        (&host_plan, Category::Incoming, "12", "+49891234512"),
        (&line_plan, Category::Incoming, "12", "12"),
        (&host_plan, Category::Incoming, "1234567", "+49891234567"),
        (&line_plan, Category::Incoming, "1234567", "+49301234567"),
    ];
    for (plan, category, input, want) in cases {
        check(plan, category, input, want);
    }
    let hit = host_plan.format(Category::Dial, "80123").matched;
    assert_eq!(
        hit.and_then(|m| m.comment),
        Some("old outside line".to_owned())
    );
}

/// Pieces regular expressions are made of, so that generated expressions often compile.
fn pattern() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("^".to_owned()),
        Just("$".to_owned()),
        Just("(".to_owned()),
        Just(")".to_owned()),
        Just(".*".to_owned()),
        Just("[0-9]".to_owned()),
        Just("[^0]".to_owned()),
        Just("+".to_owned()),
        Just("?".to_owned()),
        Just("|".to_owned()),
        Just(r"\+".to_owned()),
        Just(r"\d{2,3}".to_owned()),
        "[0-9*#äx]{1,3}",
    ];
    prop::collection::vec(piece, 1..8).prop_map(|v| v.concat())
}

fn replacement() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        "[0-9+*#$]{1,3}",
        (0usize..4).prop_map(|g| format!(r"\{g}")),
        (0usize..4).prop_map(|g| format!(r"\{{{g}}}")),
        Just(r"\\".to_owned()),
        Just("${1}".to_owned()),
    ];
    prop::collection::vec(piece, 0..5).prop_map(|v| v.concat())
}

/// The rules among `candidates` that compile: a valid rule set of arbitrary shape.
fn valid_rules(candidates: Vec<(String, String)>) -> Vec<RuleConfig> {
    candidates
        .into_iter()
        .map(|(s, r)| RuleConfig::new(s, r))
        .filter(|r| rules::Rule::compile(Category::Dial, 1, r).is_ok())
        .collect()
}

fn number() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "\\PC{0,24}",
        "[+0-9 ()./*#-]{0,24}",
        "(sip|tel):[+0-9a-z]{0,8}@?[a-z]{0,4}",
    ]
}

fn some_location() -> impl Strategy<Value = Option<LocationConfig>> {
    prop_oneof![
        Just(None),
        Just(Some(location("49", "89"))),
        Just(Some(LocationConfig {
            outside_line_prefix: Some("0".into()),
            strip_outside_line_prefix: Some(true),
            internal_length: Some(3),
            base_number: Some("12345".into()),
            ..location("49", "30")
        })),
        Just(Some(LocationConfig {
            international_prefix: Some("011".into()),
            national_prefix: Some("1".into()),
            dial_area_code_locally: Some(true),
            ..location("1", "")
        })),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Formatting never panics, whatever the number and whatever valid rules and location.
    #[test]
    fn format_never_panics(
        candidates in prop::collection::vec((pattern(), replacement()), 0..6),
        location in some_location(),
        input in number(),
    ) {
        let rules = valid_rules(candidates);
        let cfg = NumberPlanConfig {
            location,
            dial: Some(rules.clone()),
            incoming: Some(rules.clone()),
            outgoing: Some(rules),
        };
        let plan = NumberPlan::compile(&cfg);
        prop_assert!(plan.is_ok(), "{:?}", plan.err());
        if let Ok(plan) = plan {
            for category in Category::ALL {
                let out = plan.format(category, &input);
                prop_assert_eq!(&out.raw, &input);
                prop_assert!(!out.steps.is_empty());
            }
        }
    }

    /// Without a location, a number that no rule matches passes unchanged, and one that some
    /// rule matches is changed by the first of them.
    #[test]
    fn unmatched_numbers_pass_unchanged(
        candidates in prop::collection::vec((pattern(), replacement()), 0..6),
        input in number(),
    ) {
        let rules = valid_rules(candidates);
        let compiled: Vec<_> = rules
            .iter()
            .filter_map(|r| rules::Rule::compile(Category::Incoming, 1, r).ok())
            .collect();
        let first_hit = compiled.iter().position(|r| r.apply(&input).is_some());
        let plan = NumberPlan::compile(&NumberPlanConfig {
            incoming: Some(rules),
            ..NumberPlanConfig::default()
        });
        prop_assert!(plan.is_ok());
        if let Ok(plan) = plan {
            let out = plan.format(Category::Incoming, &input);
            prop_assert_eq!(out.matched.as_ref().map(|m| m.position - 1), first_hit);
            if first_hit.is_none() {
                prop_assert_eq!(out.number, input);
            }
        }
    }

    /// Rules that look for a letter never touch a number made of digits and signs.
    #[test]
    fn rules_that_cannot_match_change_nothing(input in "[+0-9 ()*#-]{0,24}") {
        let plan = rules_plan(&[("x(.*)", r"\1"), ("^[a-z]+$", "0"), ("Z", "")]);
        for category in Category::ALL {
            let out = plan.format(category, &input);
            prop_assert!(out.matched.is_none());
            prop_assert_eq!(&out.number, &input);
        }
    }

    /// Any German number dialled from Munich and reported back is the same canonical number.
    #[test]
    fn german_round_trip(nsn in "[1-7][0-9]{5,10}", local in "[1-9][0-9]{3,8}", foreign in "[23][0-9]{6,12}") {
        let p = plan(&NumberPlanConfig {
            location: Some(LocationConfig {
                outside_line_prefix: Some("0".into()),
                strip_outside_line_prefix: Some(true),
                internal_length: Some(3),
                ..location("49", "89")
            }),
            ..NumberPlanConfig::default()
        });
        for canonical in [format!("+49{nsn}"), format!("+4989{local}"), format!("+{foreign}")] {
            let dialled = p.format(Category::Dial, &canonical).number;
            let back = p.format(Category::Incoming, &dialled).number;
            prop_assert_eq!(&back, &canonical, "dialled {}", dialled);
        }
    }
}

/// What the check tool prints: the steps, the rule that matched, and the result.
#[test]
fn check_tool_report() {
    let p = plan(&NumberPlanConfig {
        dial: Some(vec![
            RuleConfig::new("^9(.*)", r"\1"),
            RuleConfig {
                comment: Some("old outside line".into()),
                ..RuleConfig::new("^80(.*)", r"0\1")
            },
        ]),
        ..NumberPlanConfig::default()
    });
    let hit = p.format(Category::Dial, "80123");
    let matched = hit.matched.clone();
    assert_eq!(
        matched.as_ref().map(|m| (m.position, m.index())),
        Some((2, 1))
    );
    assert_eq!(
        matched.and_then(|m| m.comment).as_deref(),
        Some("old outside line")
    );
    assert!(hit.changed());
    let cases = [
        (
            Category::Dial,
            "80123",
            "dial rule 2 (`^80(.*)` -> `0\\1`) matched: `80123` -> `0123`",
        ),
        (Category::Dial, "80123", "result: `0123`"),
        (
            Category::Dial,
            "123",
            "none of the 2 dial rules matched: unchanged",
        ),
        (Category::Dial, "123", "result: `123`"),
        (Category::Incoming, "123", "no incoming rules"),
    ];
    for (category, input, line) in cases {
        let report = p.format(category, input).to_string();
        assert!(
            report.lines().any(|l| l == line),
            "{line:?} not in\n{report}"
        );
    }
}
