# nothing
/* bracket comment */
