// Package money formats and validates amounts held as integers in a currency's
// minor unit, as Stripe does. There are no floats anywhere in billflow's money path.
package money

import (
	"fmt"
	"strconv"
	"strings"
)

// zeroDecimal lists Stripe's zero-decimal currencies: amounts are whole units.
var zeroDecimal = map[string]bool{
	"bif": true, "clp": true, "djf": true, "gnf": true, "jpy": true, "kmf": true,
	"krw": true, "mga": true, "pyg": true, "rwf": true, "ugx": true, "vnd": true,
	"vuv": true, "xaf": true, "xof": true, "xpf": true,
}

// threeDecimal lists Stripe's three-decimal currencies.
var threeDecimal = map[string]bool{"bhd": true, "jod": true, "kwd": true, "omr": true, "tnd": true}

// supported is every presentment currency Stripe accepts for card payments.
var supported = map[string]bool{}

func init() {
	for _, c := range strings.Fields(`usd aed afn all amd ang aoa ars aud awg azn bam bbd bdt bgn bhd bif bmd bnd bob brl bsd bwp byn bzd
cad cdf chf clp cny cop crc cve czk djf dkk dop dzd egp etb eur fjd fkp gbp gel gip gmd gnf gtq gyd hkd hnl htg huf
idr ils inr isk jmd jod jpy kes kgs khr kmf krw kwd kyd kzt lak lbp lkr lrd lsl mad mdl mga mkd mmk mnt mop mur mvr mwk
mxn myr mzn nad ngn nio nok npr nzd omr pab pen pgk php pkr pln pyg qar ron rsd rub rwf sar sbd scr sek sgd shp sle sos
srd std szl thb tjs tnd top try ttd twd tzs uah ugx uyu uzs vnd vuv wst xaf xcd xof xpf yer zar zmw`) {
		supported[c] = true
	}
}

// Supported reports whether Stripe takes this currency (lower-case ISO 4217).
func Supported(currency string) bool { return supported[strings.ToLower(currency)] }

// Exponent is the number of minor-unit digits: 0 for JPY, 2 for USD, 3 for KWD.
func Exponent(currency string) int {
	c := strings.ToLower(currency)
	switch {
	case zeroDecimal[c]:
		return 0
	case threeDecimal[c]:
		return 3
	}
	return 2
}

// minimums are Stripe's minimum charge amounts in minor units, where Stripe
// documents one; others default to the equivalent of about 50 US cents.
var minimums = map[string]int64{
	"usd": 50, "aed": 200, "aud": 50, "bgn": 100, "brl": 50, "cad": 50, "chf": 50,
	"czk": 1500, "dkk": 250, "eur": 50, "gbp": 30, "hkd": 400, "huf": 17500, "inr": 50,
	"jpy": 50, "krw": 700, "mxn": 1000, "myr": 200, "nok": 300, "nzd": 50, "pln": 200,
	"ron": 200, "sek": 300, "sgd": 50, "thb": 1000,
}

// MinimumCharge is the smallest amount Stripe will charge in the currency.
func MinimumCharge(currency string) int64 {
	c := strings.ToLower(currency)
	if m, ok := minimums[c]; ok {
		return m
	}
	if Exponent(c) == 0 {
		return 1
	}
	return 50
}

// symbols are the prefixes used when formatting; others print the ISO code.
var symbols = map[string]string{
	"usd": "$", "cad": "CA$", "aud": "A$", "nzd": "NZ$", "eur": "€", "gbp": "£",
	"jpy": "¥", "krw": "₩", "inr": "₹", "chf": "CHF ", "mxn": "MX$", "sgd": "S$", "hkd": "HK$",
}

// Format renders an amount for people: $1,234.50, €90.00, ¥12,000, -$5.00.
func Format(amount int64, currency string) string {
	c := strings.ToLower(currency)
	exp := Exponent(c)
	neg := amount < 0
	if neg {
		amount = -amount
	}
	var div int64 = 1
	for i := 0; i < exp; i++ {
		div *= 10
	}
	whole, frac := amount/div, amount%div
	s := groupThousands(strconv.FormatInt(whole, 10))
	if exp > 0 {
		s += "." + fmt.Sprintf("%0*d", exp, frac)
	}
	sym, ok := symbols[c]
	if !ok {
		sym = strings.ToUpper(c) + " "
	}
	if neg {
		return "-" + sym + s
	}
	return sym + s
}

func groupThousands(digits string) string {
	if len(digits) <= 3 {
		return digits
	}
	var b strings.Builder
	pre := len(digits) % 3
	if pre > 0 {
		b.WriteString(digits[:pre])
	}
	for i := pre; i < len(digits); i += 3 {
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(digits[i : i+3])
	}
	return b.String()
}

// Percent returns pct percent of amount, rounded up to a whole minor unit,
// using integer arithmetic only (used for partial-payment minimums).
func Percent(amount int64, pct int64) int64 {
	return (amount*pct + 99) / 100
}
