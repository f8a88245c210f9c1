package payments

// testMethods are Stripe's documented test PaymentMethod IDs with the brand
// and last four of the test card (or bank account) each stands for, as
// Stripe reports them once charged. Knowing them here names a test card
// "Visa •••• 4242" before the charge, without asking the processor.
var testMethods = map[string]Method{
	"pm_card_visa":               {Type: MethodCard, Brand: "visa", Last4: "4242"},
	"pm_card_visa_debit":         {Type: MethodCard, Brand: "visa", Last4: "5556"},
	"pm_card_mastercard":         {Type: MethodCard, Brand: "mastercard", Last4: "4444"},
	"pm_card_mastercard_debit":   {Type: MethodCard, Brand: "mastercard", Last4: "8210"},
	"pm_card_mastercard_prepaid": {Type: MethodCard, Brand: "mastercard", Last4: "5100"},
	"pm_card_amex":               {Type: MethodCard, Brand: "amex", Last4: "8431"},
	"pm_card_discover":           {Type: MethodCard, Brand: "discover", Last4: "1117"},
	"pm_card_diners":             {Type: MethodCard, Brand: "diners", Last4: "0004"},
	"pm_card_jcb":                {Type: MethodCard, Brand: "jcb", Last4: "0505"},
	"pm_card_unionpay":           {Type: MethodCard, Brand: "unionpay", Last4: "0005"},

	"pm_card_chargeDeclined":                       {Type: MethodCard, Brand: "visa", Last4: "0002"},
	"pm_card_visa_chargeDeclined":                  {Type: MethodCard, Brand: "visa", Last4: "0002"},
	"pm_card_chargeDeclinedInsufficientFunds":      {Type: MethodCard, Brand: "visa", Last4: "9995"},
	"pm_card_visa_chargeDeclinedInsufficientFunds": {Type: MethodCard, Brand: "visa", Last4: "9995"},
	"pm_card_chargeDeclinedLostCard":               {Type: MethodCard, Brand: "visa", Last4: "9987"},
	"pm_card_visa_chargeDeclinedLostCard":          {Type: MethodCard, Brand: "visa", Last4: "9987"},
	"pm_card_chargeDeclinedStolenCard":             {Type: MethodCard, Brand: "visa", Last4: "9979"},
	"pm_card_visa_chargeDeclinedStolenCard":        {Type: MethodCard, Brand: "visa", Last4: "9979"},
	"pm_card_chargeDeclinedExpiredCard":            {Type: MethodCard, Brand: "visa", Last4: "0069"},
	"pm_card_visa_chargeDeclinedExpiredCard":       {Type: MethodCard, Brand: "visa", Last4: "0069"},
	"pm_card_chargeDeclinedIncorrectCvc":           {Type: MethodCard, Brand: "visa", Last4: "0127"},
	"pm_card_visa_chargeDeclinedIncorrectCvc":      {Type: MethodCard, Brand: "visa", Last4: "0127"},
	"pm_card_chargeDeclinedProcessingError":        {Type: MethodCard, Brand: "visa", Last4: "0119"},
	"pm_card_visa_chargeDeclinedProcessingError":   {Type: MethodCard, Brand: "visa", Last4: "0119"},
	"pm_card_chargeCustomerFail":                   {Type: MethodCard, Brand: "visa", Last4: "0341"},

	"pm_card_authenticationRequired":        {Type: MethodCard, Brand: "visa", Last4: "3184"},
	"pm_card_authenticationRequiredOnSetup": {Type: MethodCard, Brand: "visa", Last4: "3155"},
	"pm_card_threeDSecure2Required":         {Type: MethodCard, Brand: "visa", Last4: "3220"},

	"pm_usBankAccount":                   {Type: MethodUSBankAccount, BankName: "STRIPE TEST BANK", Last4: "6789"},
	"pm_usBankAccount_success":           {Type: MethodUSBankAccount, BankName: "STRIPE TEST BANK", Last4: "6789"},
	"pm_usBankAccount_insufficientFunds": {Type: MethodUSBankAccount, BankName: "STRIPE TEST BANK", Last4: "2227"},
	"pm_usBankAccount_accountClosed":     {Type: MethodUSBankAccount, BankName: "STRIPE TEST BANK", Last4: "1113"},
}

// TestMethod returns the display details of one of Stripe's documented test
// PaymentMethod IDs (pm_card_visa, pm_usBankAccount, ...); ok is false for
// any other ID, whose details only the processor knows.
func TestMethod(id string) (m Method, ok bool) {
	m, ok = testMethods[id]
	if ok {
		m.ID = id
	}
	return m, ok
}
