use moirelab_synth::{check_digit, Homography, Td1};

#[test]
fn mrz_check_digits_match_icao_9303_examples() {
    // Doc 9303 Part 3 §4.9 and the Part 4 TD3 specimen (passport L898902C3, born 740812,
    // expires 120415).
    assert_eq!(check_digit("L898902C3"), Some('6'));
    assert_eq!(check_digit("740812"), Some('2'));
    assert_eq!(check_digit("120415"), Some('9'));
    assert_eq!(check_digit("D23145890"), Some('7'));
    let d = Td1 {
        country: "UTO".into(),
        number: "D23145890".into(),
        birth: "740812".into(),
        sex: 'F',
        expiry: "120415".into(),
        nationality: "UTO".into(),
        surname: "ERIKSSON".into(),
        given: "ANNA MARIA".into(),
    };
    assert_eq!(d.lines()[1], "7408122F1204159UTO<<<<<<<<<<<6");
}

#[test]
fn homography_round_trips_points_through_its_inverse() {
    let src = [[0.0, 0.0], [256.0, 0.0], [256.0, 161.0], [0.0, 161.0]];
    let dst = [[20.0, 31.0], [230.0, 12.0], [244.0, 190.0], [8.0, 170.0]];
    let h = Homography::from_points(&src, &dst).unwrap();
    let inv = h.inverse().unwrap();
    for &(x, y) in &[(0.0, 0.0), (128.0, 80.0), (255.0, 1.0), (17.5, 140.25)] {
        let p = h.apply(x, y);
        let q = inv.apply(p[0], p[1]);
        assert!(
            (q[0] - x).abs() < 1e-9 && (q[1] - y).abs() < 1e-9,
            "({x},{y}) -> {q:?}"
        );
    }
}
