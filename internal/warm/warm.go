package warm

import (
	_ "github.com/chromedp/chromedp"
	_ "github.com/emersion/go-smtp"
	_ "github.com/gin-gonic/gin"
	_ "github.com/jackc/pgx/v5/pgxpool"
	_ "github.com/stripe/stripe-go/v76/client"
	_ "github.com/temporalio/ui-server/v2/server"
	_ "github.com/wneessen/go-mail"
	_ "go.temporal.io/sdk/client"
	_ "go.temporal.io/sdk/testsuite"
	_ "go.temporal.io/sdk/worker"
	_ "go.temporal.io/server/temporal"
	_ "go.temporal.io/server/common/persistence/sql/sqlplugin/sqlite"
)
