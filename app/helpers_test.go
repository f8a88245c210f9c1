package app

import "github.com/billflow/billflow/store"

func storeNP(name, cur, tz string) store.NewPractice {
	return store.NewPractice{Name: name, Currency: cur, Timezone: tz}
}
