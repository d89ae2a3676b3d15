"""The staff console: logins, the live queue, case work (see ``bot.staff.web``)."""
