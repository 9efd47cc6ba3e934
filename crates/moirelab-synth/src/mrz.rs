//! TD1 machine-readable zone (3 lines × 30 characters) with check digits per ICAO Doc 9303
//! Part 3 §4.9: weights 7, 3, 1 repeating; `<` = 0, `0`–`9` = value, `A`–`Z` = 10–35;
//! the check digit is the weighted sum mod 10.

use moirelab_core::rng::Rng;

/// Value of one MRZ character, `None` outside the MRZ alphabet.
pub fn char_value(c: char) -> Option<u32> {
    match c {
        '<' => Some(0),
        '0'..='9' => Some(c as u32 - '0' as u32),
        'A'..='Z' => Some(c as u32 - 'A' as u32 + 10),
        _ => None,
    }
}

/// ICAO 9303 check digit of a field; `None` if a character is outside the alphabet.
pub fn check_digit(field: &str) -> Option<char> {
    const W: [u32; 3] = [7, 3, 1];
    let mut sum = 0u32;
    for (i, c) in field.chars().enumerate() {
        sum += char_value(c)? * W[i % 3];
    }
    char::from_digit(sum % 10, 10)
}

fn pad(s: &str, n: usize) -> String {
    let mut o: String = s.chars().take(n).collect();
    while o.chars().count() < n {
        o.push('<');
    }
    o
}

/// The fields of a TD1 document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Td1 {
    pub country: String,
    pub number: String,
    pub birth: String,
    pub sex: char,
    pub expiry: String,
    pub nationality: String,
    pub surname: String,
    pub given: String,
}

impl Td1 {
    /// The three 30-character lines with all four check digits (number, birth, expiry,
    /// composite over line 1 positions 6–30 and line 2 positions 1–7, 9–15, 19–29).
    pub fn lines(&self) -> [String; 3] {
        let number = pad(&self.number, 9);
        let cn = check_digit(&number).unwrap_or('0');
        let l1 = pad(&format!("I<{}{}{}", pad(&self.country, 3), number, cn), 30);
        let cb = check_digit(&self.birth).unwrap_or('0');
        let ce = check_digit(&self.expiry).unwrap_or('0');
        let mut l2 = format!(
            "{}{}{}{}{}{}",
            self.birth,
            cb,
            self.sex,
            self.expiry,
            ce,
            pad(&self.nationality, 3)
        );
        l2 = pad(&l2, 29);
        let composite: String = l1[5..30].to_string() + &l2[0..7] + &l2[8..15] + &l2[18..29];
        l2.push(check_digit(&composite).unwrap_or('0'));
        let l3 = pad(
            &format!("{}<<{}", self.surname, self.given.replace(' ', "<")),
            30,
        );
        [l1, l2, l3]
    }

    /// A random, well-formed document.
    pub fn random(rng: &mut Rng) -> Td1 {
        const SURNAMES: &[&str] = &[
            "ERIKSSON",
            "MUSTERMANN",
            "ROSSI",
            "DUPONT",
            "NOWAK",
            "GARCIA",
            "SILVA",
            "JANSEN",
            "KOVACS",
            "MURPHY",
            "HORVAT",
            "LINDQVIST",
        ];
        const GIVEN: &[&str] = &[
            "ANNA", "MARIA", "ERIKA", "LUCA", "JEAN", "PIOTR", "ELENA", "JOAO", "SANNE", "ZOLTAN",
            "AOIFE", "IVAN",
        ];
        const COUNTRIES: &[&str] = &["UTO", "XXA", "XXB", "ZZZ"];
        let letter = |r: &mut Rng| (b'A' + r.below(26) as u8) as char;
        let digit = |r: &mut Rng| (b'0' + r.below(10) as u8) as char;
        let number: String = (0..9)
            .map(|i| if i < 2 { letter(rng) } else { digit(rng) })
            .collect();
        let date = |r: &mut Rng, y0: u64| {
            format!(
                "{:02}{:02}{:02}",
                (y0 + r.below(30)) % 100,
                1 + r.below(12),
                1 + r.below(28)
            )
        };
        let country = COUNTRIES[rng.below(COUNTRIES.len() as u64) as usize].to_string();
        Td1 {
            nationality: country.clone(),
            country,
            number,
            birth: date(rng, 50),
            sex: if rng.bernoulli(0.5) { 'F' } else { 'M' },
            expiry: date(rng, 25),
            surname: SURNAMES[rng.below(SURNAMES.len() as u64) as usize].to_string(),
            given: GIVEN[rng.below(GIVEN.len() as u64) as usize].to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn icao_9303_part5_td1_specimen_is_reproduced() {
        // ICAO Doc 9303 Part 5, Appendix A: the TD1 specimen of Utopia.
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
        let [l1, l2, l3] = d.lines();
        assert_eq!(l1, "I<UTOD231458907<<<<<<<<<<<<<<<");
        assert_eq!(l2, "7408122F1204159UTO<<<<<<<<<<<6");
        assert_eq!(l3, "ERIKSSON<<ANNA<MARIA<<<<<<<<<<");
    }

    #[test]
    fn check_digits_of_known_fields() {
        // ICAO 9303 Part 3 worked examples.
        assert_eq!(check_digit("520727"), Some('3'));
        assert_eq!(check_digit("AB2134<<<"), Some('5'));
        assert_eq!(check_digit("L898902C3"), Some('6'));
        assert_eq!(check_digit("a"), None);
    }

    #[test]
    fn random_documents_have_valid_lines() {
        let mut r = Rng::new(9);
        for _ in 0..50 {
            let ls = Td1::random(&mut r).lines();
            for l in &ls {
                assert_eq!(l.len(), 30);
                assert!(l.chars().all(|c| char_value(c).is_some()), "{l}");
            }
            assert_eq!(check_digit(&ls[0][5..14]), ls[0].chars().nth(14));
            assert_eq!(check_digit(&ls[1][0..6]), ls[1].chars().nth(6));
        }
    }
}
