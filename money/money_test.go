package money

import "testing"

func TestFormat(t *testing.T) {
	cases := []struct {
		amt  int64
		cur  string
		want string
	}{
		{123450, "usd", "$1,234.50"},
		{9000, "eur", "€90.00"},
		{12000, "jpy", "¥12,000"},
		{5, "usd", "$0.05"},
		{-500, "usd", "-$5.00"},
		{1234567, "kwd", "KWD 1,234.567"},
		{100000000, "gbp", "£1,000,000.00"},
		{0, "krw", "₩0"},
	}
	for _, c := range cases {
		if got := Format(c.amt, c.cur); got != c.want {
			t.Errorf("Format(%d,%s)=%q want %q", c.amt, c.cur, got, c.want)
		}
	}
}

func TestExponentAndMinimum(t *testing.T) {
	if Exponent("JPY") != 0 || Exponent("usd") != 2 || Exponent("kwd") != 3 {
		t.Fatal("exponents wrong")
	}
	if MinimumCharge("usd") != 50 || MinimumCharge("jpy") != 50 || MinimumCharge("gbp") != 30 {
		t.Fatal("minimums wrong")
	}
	if !Supported("USD") || Supported("xyz") {
		t.Fatal("supported wrong")
	}
	if Percent(10001, 50) != 5001 {
		t.Fatal("percent rounds up")
	}
}
